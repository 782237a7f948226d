"""GET /teams/{team_id}/cohort-report: JSON and CSV, for the team's clinicians only, audited."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from sqlalchemy import select

from backend.audit import AuditEvent
from tests.reports.helpers import seed_treated


def _groups(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(g["grouping"], g["group"]): g for g in body["groups"]}


def test_team_clinician_gets_the_report_with_slopes_and_rates(
    clinician: Any, db_sessionmaker: Any, client: Any
) -> None:
    team_id = clinician.team_ids[0]
    seed_treated(db_sessionmaker, team_id, n=5, trough=8.0, clinician_id=clinician.user_id)
    resp = clinician.get(f"/api/v1/teams/{team_id}/cohort-report")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["team_id"] == team_id and body["n_patients"] == 5 and body["n_treated"] == 5
    assert "confounding by indication" in body["caveat"]
    groups = _groups(body)
    band = groups[("trough_band", "5-10")]
    assert band["n_patients"] == 5 and not band["suppressed"]
    ml = band["slopes"]["fev1_ml_per_year"]
    assert ml["before_treatment"]["ci_low"] < -100 < ml["before_treatment"]["ci_high"]
    assert ml["on_treatment"]["ci_low"] < -20 < ml["on_treatment"]["ci_high"]
    assert ml["change"]["estimate"] > 0
    # % predicted slopes come from the GLI values derived at ingest
    assert band["slopes"]["fev1_pct_predicted_per_year"]["change"]["estimate"] is not None
    assert band["side_effects"]["events"] == 10
    assert band["side_effects"]["by_term_and_grade"][0]["grade"] == 2
    for label in ("< 5", "10-15", "> 15"):
        assert groups[("trough_band", label)]["suppressed"]
        assert groups[("trough_band", label)]["n_patients"] is None
    # No identifier of any patient in the report
    text = resp.get_data(as_text=True)
    assert "REF-" not in text
    with db_sessionmaker() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "cohort_report.read")).all()
    assert [(r.actor_id, r.resource_id, r.outcome) for r in rows] == [(clinician.user_id, team_id, "success")]


def test_csv_has_one_row_per_estimate(clinician: Any, db_sessionmaker: Any) -> None:
    team_id = clinician.team_ids[0]
    seed_treated(db_sessionmaker, team_id, n=5, trough=12.0, clinician_id=clinician.user_id)
    resp = clinician.get(f"/api/v1/teams/{team_id}/cohort-report?format=csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    lines = [line for line in resp.get_data(as_text=True).splitlines() if not line.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    band = [r for r in rows if r["grouping"] == "trough_band" and r["group"] == "10-15"]
    measures = {r["measure"] for r in band}
    assert "fev1_ml_per_year.change" in measures and "side_effects_per_patient_year" in measures
    change = next(r for r in band if r["measure"] == "fev1_ml_per_year.change")
    assert float(change["ci_low"]) < float(change["estimate"]) < float(change["ci_high"])
    assert {r["measure"] for r in rows if r["group"] == "5-10"} == {"suppressed"}
    assert "confounding by indication" in resp.get_data(as_text=True)


def test_bad_format_is_a_problem(clinician: Any) -> None:
    resp = clinician.get(f"/api/v1/teams/{clinician.team_ids[0]}/cohort-report?format=xlsx")
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"


def test_other_teams_and_patients_cannot_read_it(
    clinician: Any, make_clinician: Any, patient: Any, db_sessionmaker: Any
) -> None:
    team_id = clinician.team_ids[0]
    other = make_clinician()
    foreign = other.get(f"/api/v1/teams/{team_id}/cohort-report")
    missing = other.get(f"/api/v1/teams/{uuid.uuid4()}/cohort-report")
    assert foreign.status_code == missing.status_code == 404
    assert {k: v for k, v in foreign.get_json().items() if k != "request_id"} == {
        k: v for k, v in missing.get_json().items() if k != "request_id"
    }
    assert other.get(f"/api/v1/teams/{team_id}/cohort-report?format=csv").status_code == 404
    assert patient.get(f"/api/v1/teams/{team_id}/cohort-report").status_code == 403
    with db_sessionmaker() as session:
        assert not session.scalars(select(AuditEvent).where(AuditEvent.action == "cohort_report.read")).all()
