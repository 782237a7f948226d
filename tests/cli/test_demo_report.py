"""The demo cohort gives the cohort report something to show in every band."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from backend.cli.demo import DEMO_CLINICIAN, run_demo
from backend.config import Settings


def test_demo_report_has_every_trough_band_and_both_starting_levels(
    settings: Settings, client: FlaskClient
) -> None:
    result = run_demo(settings, echo=lambda _: None)
    tokens = client.post("/api/v1/auth/login", json={"email": DEMO_CLINICIAN, "password": result["password"]})
    assert tokens.status_code == 200, tokens.get_json()
    headers = {"Authorization": f"Bearer {tokens.get_json()['access_token']}"}
    resp = client.get(f"/api/v1/teams/{result['team_id']}/cohort-report", headers=headers)
    assert resp.status_code == 200, resp.get_json()
    groups: dict[tuple[str, str], dict[str, Any]] = {
        (g["grouping"], g["group"]): g for g in resp.get_json()["groups"]
    }
    for band in ("< 5", "5-10", "10-15", "> 15"):
        g = groups[("trough_band", band)]
        assert not g["suppressed"], band
        assert g["slopes"]["fev1_ml_per_year"]["change"]["estimate"] is not None, band
        assert g["side_effects"]["events"] > 0, band
    for start in ("< 70 % predicted (late)", ">= 70 % predicted (early)"):
        assert not groups[("fev1_at_start", start)]["suppressed"], start
    assert sum(not groups[("dose", d)]["suppressed"] for d in ("< 1.5 mg", "1.5-2.5 mg", ">= 2.5 mg")) >= 2
    # every group of every grouping, from the recorded profile: shown, >= 5 patients
    counts = {key: g["n_patients"] for key, g in groups.items()}
    for grouping, labels in {
        "trough_band": ("< 5", "5-10", "10-15", "> 15"),
        "fev1_at_start": ("< 70 % predicted (late)", ">= 70 % predicted (early)"),
        "diagnosis_to_start": ("< 2 years", "2-5 years", ">= 5 years"),
        "menopausal_status": ("premenopausal", "postmenopausal", "unknown"),
        "dose": ("< 1.5 mg", "1.5-2.5 mg", ">= 2.5 mg"),
    }.items():
        for label in labels:
            g = groups[(grouping, label)]
            assert not g["suppressed"] and g["n_patients"] >= 5, (grouping, label, counts)
    assert {grouping for grouping, _ in groups} == {
        "trough_band",
        "fev1_at_start",
        "diagnosis_to_start",
        "menopausal_status",
        "dose",
    }
    assert all(not g["suppressed"] for g in groups.values()), counts
