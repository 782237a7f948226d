"""The six streams over HTTP: derived values at ingest, paging, time windows,
offsets kept, the sync feed, event-driven alerts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from backend.config import REPO_ROOT

BASE = "/api/v1/patients/me"


def cid() -> str:
    return str(uuid.uuid4())


def post_items(actor: Any, stream: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = actor.post(f"{BASE}/{stream}", json={"items": items})
    assert resp.status_code == 200, resp.get_json()
    results: list[dict[str, Any]] = resp.get_json()["results"]
    return results


def test_examples_are_accepted_by_the_server(patient: Any) -> None:
    for path in sorted(Path(REPO_ROOT / "api_spec" / "examples").glob("*-item.json")):
        doc = json.loads(path.read_text())
        [result] = post_items(patient, doc["stream"], [doc["example"]])
        assert result["status"] == "created", (path.name, result)


def test_gli_global_values_of_domain_check_case(make_patient: Any, clinician: Any) -> None:
    # Female, 40 y at the measurement, 165 cm: FEV1 2.50 L -> 84.31 % predicted,
    # z -1.072, predicted 2.965 L, LLN 2.244 L; FVC predicted 3.576 L (GLI Global).
    pat = make_patient(clinician, date_of_birth="1986-03-02", height_cm=165.0, timezone="UTC")
    [r] = post_items(
        pat,
        "spirometry",
        [{"client_id": cid(), "measured_at": "2026-03-02T09:00:00+00:00", "fev1_l": 2.50, "fvc_l": 3.576}],
    )
    got = pat.get(f"{BASE}/spirometry/{r['id']}").get_json()
    assert got["fev1_pct_predicted"] == pytest.approx(84.31, abs=0.01)
    assert got["fev1_z"] == pytest.approx(-1.072, abs=0.002)
    assert got["fev1_predicted_l"] == pytest.approx(2.965, abs=0.001)
    assert got["fev1_lln_l"] == pytest.approx(2.244, abs=0.001)
    assert got["fvc_predicted_l"] == pytest.approx(3.576, abs=0.001)
    assert got["fvc_pct_predicted"] == pytest.approx(100.0, abs=0.05)
    assert got["fev1_fvc"] == pytest.approx(2.50 / 3.576, abs=0.001)


def test_session_values_are_the_largest_acceptable_blows(make_patient: Any, clinician: Any) -> None:
    pat = make_patient(clinician, date_of_birth="1986-03-02", height_cm=165.0, timezone="UTC")
    blows = [
        # the device reported this blow's 2.90 L although it was not acceptable
        {"fev1_l": 2.90, "fvc_l": 3.30, "fev1_acceptable": False, "fvc_acceptable": False},
        {"fev1_l": 2.50, "fvc_l": 3.576, "fev1_acceptable": True, "fvc_acceptable": True},
        {"fev1_l": 2.45, "fvc_l": 3.60, "fev1_acceptable": True, "fvc_acceptable": True},
    ]
    [r] = post_items(
        pat,
        "spirometry",
        [
            {
                "client_id": cid(),
                "measured_at": "2026-03-02T09:00:00+00:00",
                "fev1_l": 2.90,
                "fvc_l": 3.30,
                "fev1_fvc": 0.879,
                "blows": blows,
            }
        ],
    )
    got = pat.get(f"{BASE}/spirometry/{r['id']}").get_json()
    assert (got["reported_fev1_l"], got["reported_fvc_l"]) == (2.90, 3.30)
    assert (got["fev1_l"], got["fvc_l"]) == (2.50, 3.60)  # largest acceptable of each
    assert got["fev1_fvc"] == pytest.approx(2.50 / 3.60, abs=0.001)
    assert got["fev1_pct_predicted"] == pytest.approx(84.31, abs=0.01)  # GLI from 2.50 L, not 2.90
    assert got["gli_note"] is None
    # FEV1/FVC against the GLI Global LLN (female 40 y 165 cm: predicted 0.828, LLN 0.719)
    assert got["fev1_fvc_predicted"] == pytest.approx(0.8281, abs=0.0001)
    assert got["fev1_fvc_lln"] == pytest.approx(0.7189, abs=0.0002)
    assert got["fev1_fvc_below_lln"] is True  # 0.694 < 0.719: obstruction


def test_no_reference_value_says_why(make_patient: Any, clinician: Any) -> None:
    child = make_patient(clinician, date_of_birth="2024-01-01", height_cm=100.0, timezone="UTC")
    [r] = post_items(
        child, "spirometry", [{"client_id": cid(), "measured_at": "2026-03-02T09:00:00+00:00", "fev1_l": 1.0}]
    )
    got = child.get(f"{BASE}/spirometry/{r['id']}").get_json()
    assert got["fev1_pct_predicted"] is None
    assert "age 2.2 years is outside the GLI Global range 3-95 years" in got["gli_note"]


def test_session_grade_from_blows(patient: Any) -> None:
    blows = [
        {"fev1_l": v, "fvc_l": v + 0.5, "fev1_acceptable": True, "fvc_acceptable": True}
        for v in (2.50, 2.40, 2.30)
    ]
    [a, e] = post_items(
        patient,
        "spirometry",
        [
            {
                "client_id": cid(),
                "measured_at": "2026-03-02T09:00:00+00:00",
                "fev1_l": 2.5,
                "fvc_l": 3.0,
                "blows": blows,
            },
            {
                "client_id": cid(),
                "measured_at": "2026-03-03T09:00:00+00:00",
                "fev1_l": 2.5,
                "fvc_l": 3.0,
                "blows": blows[:1],
            },
        ],
    )
    assert patient.get(f"{BASE}/spirometry/{a['id']}").get_json()["session_grade"] == "A"
    assert patient.get(f"{BASE}/spirometry/{e['id']}").get_json()["session_grade"] == "E"
    ungraded = post_items(
        patient,
        "spirometry",
        [{"client_id": cid(), "measured_at": "2026-03-04T09:00:00+00:00", "fev1_l": 2.5}],
    )
    got = patient.get(f"{BASE}/spirometry/{ungraded[0]['id']}").get_json()
    assert got["session_grade"] is None and got["fvc_pct_predicted"] is None


def test_trough_flags_from_dose_log_and_regimen(patient: Any) -> None:
    post_items(
        patient,
        "regimens",
        [
            {
                "client_id": cid(),
                "kind": "dose_change",
                "effective_at": "2026-03-01T08:00:00+00:00",
                "daily_dose_mg": 2.0,
            }
        ],
    )
    post_items(
        patient,
        "doses",
        [{"client_id": cid(), "taken_at": "2026-03-04T08:00:00+00:00", "status": "taken", "dose_mg": 2.0}],
    )
    # Drawn 4 h after the dose, 3 days after the dose change.
    [r] = post_items(
        patient,
        "troughs",
        [{"client_id": cid(), "value_ng_ml": 16.0, "drawn_at": "2026-03-04T12:00:00+00:00"}],
    )
    got = patient.get(f"{BASE}/troughs/{r['id']}").get_json()
    assert got["hours_since_last_dose"] == pytest.approx(4.0)
    assert got["days_since_regimen_change"] == pytest.approx(3.17, abs=0.01)
    assert got["not_true_trough"] is True
    assert got["before_steady_state"] is True
    # A true trough two weeks later: 24 h after the dose, steady state reached.
    post_items(
        patient,
        "doses",
        [{"client_id": cid(), "taken_at": "2026-03-15T08:00:00+00:00", "status": "taken", "dose_mg": 2.0}],
    )
    [r2] = post_items(
        patient,
        "troughs",
        [
            {
                "client_id": cid(),
                "value_ng_ml": 8.0,
                "drawn_at": "2026-03-16T08:00:00+00:00",
                "last_dose_at": "2026-03-15T08:00:00+00:00",
            }
        ],
    )
    got2 = patient.get(f"{BASE}/troughs/{r2['id']}").get_json()
    assert got2["hours_since_last_dose"] == pytest.approx(24.0)
    assert got2["not_true_trough"] is False and got2["before_steady_state"] is False


def test_offset_is_kept_and_window_and_paging_work(patient: Any) -> None:
    items = [
        {"client_id": cid(), "measured_at": f"2026-05-{d:02d}T08:00:00-04:00", "fev1_l": 2.0 + d / 100}
        for d in range(1, 11)
    ]
    post_items(patient, "spirometry", items)
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"{BASE}/spirometry?limit=3&since=2026-05-03T00:00:00%2B00:00"
        url += (
            f"&until=2026-05-09T00:00:00%2B00:00&cursor={cursor}"
            if cursor
            else "&until=2026-05-09T00:00:00%2B00:00"
        )
        page = patient.get(url).get_json()
        got += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [g["measured_at"][:10] for g in got] == [f"2026-05-{d:02d}" for d in range(3, 9)]
    assert all(g["measured_at"].endswith("-04:00") for g in got)


def test_changes_feed_includes_every_stream_and_tombstones(patient: Any) -> None:
    [s] = post_items(
        patient,
        "spirometry",
        [{"client_id": cid(), "measured_at": "2026-05-01T08:00:00+00:00", "fev1_l": 2.1}],
    )
    post_items(
        patient, "doses", [{"client_id": cid(), "taken_at": "2026-05-01T08:00:00+00:00", "status": "missed"}]
    )
    first = patient.get(f"{BASE}/changes").get_json()
    assert [c["stream"] for c in first["items"]] == ["spirometry", "doses"]
    assert patient.delete(f"{BASE}/spirometry/{s['id']}").status_code == 204
    later = patient.get(f"{BASE}/changes?cursor={first['next_cursor']}").get_json()
    assert [(c["stream"], c["op"], c["id"]) for c in later["items"]] == [("spirometry", "delete", s["id"])]
    assert later["has_more"] is False
    assert patient.get(f"{BASE}/spirometry/{s['id']}").status_code == 404


def test_urgent_side_effect_raises_alert_and_advises_patient(patient: Any, clinician: Any) -> None:
    [r] = post_items(
        patient,
        "side-effects",
        [
            {
                "client_id": cid(),
                "onset_at": "2026-05-01T08:00:00+00:00",
                "term": "dyspnea",
                "severity": "severe",
                "temperature_c": 38.6,
                "antibiotics_started": False,
            }
        ],
    )
    assert r["status"] == "created"
    assert r["alert_id"] and r["patient_message"]
    alerts = clinician.get("/api/v1/alerts").get_json()["items"]
    assert [a["id"] for a in alerts] == [r["alert_id"]]
    assert alerts[0]["severity"] == "urgent"
    [mild] = post_items(
        patient,
        "side-effects",
        [
            {
                "client_id": cid(),
                "onset_at": "2026-05-02T08:00:00+00:00",
                "term": "rash_acneiform",
                "severity": "mild",
            }
        ],
    )
    assert mild.get("alert_id") is None


def test_sudden_breathlessness_and_cough_with_earlier_fever_are_same_day(
    patient: Any, clinician: Any
) -> None:
    [sudden] = post_items(
        patient,
        "side-effects",
        [
            {
                "client_id": cid(),
                "onset_at": "2026-05-01T08:00:00+00:00",
                "term": "dyspnea",
                "severity": "mild",
                "sudden": True,
            }
        ],
    )
    assert sudden["alert_id"]
    assert sudden["patient_message"].startswith("Seek emergency care now")
    [fever, cough] = post_items(
        patient,
        "side-effects",
        [
            {
                "client_id": cid(),
                "onset_at": "2026-05-03T08:00:00+00:00",
                "term": "fatigue",
                "severity": "mild",
            },
            {
                "client_id": cid(),
                "onset_at": "2026-05-04T08:00:00+00:00",
                "term": "cough",
                "severity": "moderate",
            },
        ],
    )
    # the cough is judged with the breathlessness reported three days before
    assert fever.get("alert_id") is None
    assert cough["alert_id"] and cough["patient_message"] == "Please contact your care team today."
    alerts = {a["id"]: a for a in clinician.get("/api/v1/alerts").get_json()["items"]}
    assert alerts[cough["alert_id"]]["severity"] == "urgent"
    assert alerts[sudden["alert_id"]]["severity"] == "urgent"
    listed = patient.get(f"{BASE}/side-effects").get_json()["items"]
    assert sorted(i["sudden"] for i in listed) == [False, False, True]


def test_pneumothorax_tells_patient_to_seek_emergency_care(patient: Any) -> None:
    [r] = post_items(
        patient,
        "events",
        [{"client_id": cid(), "kind": "pneumothorax", "occurred_at": "2026-05-01T08:00:00+00:00"}],
    )
    assert r["alert_id"]
    assert "emergency" in r["patient_message"].lower()


def test_trend_and_trough_schedule_endpoints(patient: Any) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    items = [
        {
            "client_id": cid(),
            "measured_at": (now - timedelta(days=d)).isoformat(),
            "fev1_l": round(2.5 + 0.15 * d / 365, 3),
        }
        for d in range(0, 300, 2)
    ]
    post_items(patient, "spirometry", items)
    trend = patient.get(f"{BASE}/trend").get_json()
    assert trend["n_readings"] > 100
    assert trend["slope_ml_per_year"] == pytest.approx(-150, abs=25)
    assert trend["verdict"] == "rapid_decline"
    # the learning period is stated, not silently dropped
    first_day = (now - timedelta(days=298)).date()
    assert trend["learning_days"] == 14
    assert trend["learning_period_end"] == (first_day + timedelta(days=14)).isoformat()
    assert "first 14 days" in trend["learning_period_note"]
    assert trend["window_start"] >= trend["learning_period_end"]
    # current level and an interval on the %-predicted slope
    assert trend["current_level_l"] == pytest.approx(2.5, abs=0.05)
    assert trend["current_pct_predicted"] == pytest.approx(100 * trend["current_level_l"] / 2.9, abs=8)
    lo, mid, hi = (
        trend[k] for k in ("slope_pct_pred_ci_low", "slope_pct_pred_per_year", "slope_pct_pred_ci_high")
    )
    assert lo < mid < hi < 0
    # Treatment started three days ago: the decline is now the "before" segment.
    post_items(
        patient,
        "regimens",
        [
            {
                "client_id": cid(),
                "kind": "start",
                "daily_dose_mg": 2.0,
                "effective_at": (now - timedelta(days=3)).isoformat(),
            }
        ],
    )
    trend = patient.get(f"{BASE}/trend").get_json()
    before = [s for s in trend["segments"] if s["label"] == "before_treatment"]
    assert before and before[0]["slope_ml_per_year"] == pytest.approx(-150, abs=25)
    schedule = patient.get(f"{BASE}/trough-schedule").get_json()
    start_items = [i for i in schedule["items"] if i["reason"] == "start"]
    assert start_items and start_items[0]["status"] in ("upcoming", "due")


def test_rule_thresholds_are_listed_with_sources_and_overridable(clinician: Any, make_patient: Any) -> None:
    listed = {t["name"]: t for t in clinician.get("/api/v1/rule-thresholds").get_json()}
    assert listed["rapid_decline_ml_per_year"]["default"] == -90.0
    assert all(t["source"] for t in listed.values()), [n for n, t in listed.items() if not t["source"]]
    pat = make_patient(clinician)
    assert pat.get("/api/v1/rule-thresholds").status_code == 403
    team = clinician.team_ids[0]
    resp = clinician.patch(
        f"/api/v1/teams/{team}", json={"settings": {"rule_overrides": {"rapid_decline_ml_per_year": -60}}}
    )
    assert resp.status_code == 200, resp.get_json()
    bad = clinician.patch(f"/api/v1/patients/{pat.patient_id}", json={"rule_overrides": {"no_such_rule": 1}})
    assert bad.status_code == 422
    assert "rule_overrides" in bad.get_json()["errors"]["json"]


def test_patient_list_summarises_latest_reading_and_open_alerts(clinician: Any, make_patient: Any) -> None:
    quiet, unwell = make_patient(clinician), make_patient(clinician)
    post_items(
        unwell,
        "spirometry",
        [{"client_id": cid(), "fev1_l": 1.9, "measured_at": "2026-05-01T08:00:00+00:00"}],
    )
    post_items(
        unwell,
        "events",
        [{"client_id": cid(), "kind": "pneumothorax", "occurred_at": "2026-05-02T08:00:00+00:00"}],
    )
    listed = {p["id"]: p["summary"] for p in clinician.get("/api/v1/patients").get_json()["items"]}
    assert listed[quiet.patient_id]["open_alerts"] == {"urgent": 0, "review": 0, "digest": 0}
    assert listed[quiet.patient_id]["latest_fev1_l"] is None
    assert listed[unwell.patient_id]["open_alerts"]["urgent"] == 1
    assert listed[unwell.patient_id]["latest_fev1_l"] == 1.9


def test_trough_flags_follow_a_dose_or_regimen_synced_after_the_trough(patient: Any) -> None:
    """Phones sync streams in any order: the trough can arrive before the dose
    taken four hours before it, and before the dose change three days earlier."""
    [t] = post_items(
        patient,
        "troughs",
        [{"client_id": cid(), "value_ng_ml": 16.0, "drawn_at": "2026-03-04T12:00:00+00:00"}],
    )
    first = patient.get(f"{BASE}/changes").get_json()
    got = patient.get(f"{BASE}/troughs/{t['id']}").get_json()
    assert got["hours_since_last_dose"] is None and got["not_true_trough"] is False
    [dose] = post_items(
        patient,
        "doses",
        [{"client_id": cid(), "status": "taken", "taken_at": "2026-03-04T08:00:00+00:00", "dose_mg": 2.0}],
    )
    got = patient.get(f"{BASE}/troughs/{t['id']}").get_json()
    assert got["hours_since_last_dose"] == pytest.approx(4.0)
    assert got["not_true_trough"] is True
    assert got["before_steady_state"] is False
    post_items(
        patient,
        "regimens",
        [
            {
                "client_id": cid(),
                "kind": "dose_change",
                "effective_at": "2026-03-01T08:00:00+00:00",
                "daily_dose_mg": 2.0,
            }
        ],
    )
    got = patient.get(f"{BASE}/troughs/{t['id']}").get_json()
    assert got["before_steady_state"] is True
    later = patient.get(f"{BASE}/changes?cursor={first['next_cursor']}").get_json()["items"]
    trough_changes = [c for c in later if c["stream"] == "troughs"]
    assert trough_changes and trough_changes[-1]["data"]["before_steady_state"] is True
    # A dose far from the draw changes nothing and adds no change to the feed.
    before = patient.get(f"{BASE}/changes").get_json()["next_cursor"]
    post_items(
        patient,
        "doses",
        [{"client_id": cid(), "taken_at": "2026-02-01T08:00:00+00:00", "status": "taken", "dose_mg": 2.0}],
    )
    after = patient.get(f"{BASE}/changes?cursor={before}").get_json()["items"]
    assert [c["stream"] for c in after] == ["doses"]
    # Deleting the dose logged by mistake takes its effect on the trough back.
    assert patient.delete(f"{BASE}/doses/{dose['id']}").status_code == 204
    got = patient.get(f"{BASE}/troughs/{t['id']}").get_json()
    assert got["hours_since_last_dose"] is None and got["not_true_trough"] is False


def test_trough_without_a_dose_time_is_marked_last_dose_unknown(patient: Any) -> None:
    [t] = post_items(
        patient,
        "troughs",
        [{"client_id": cid(), "value_ng_ml": 7.0, "drawn_at": "2026-03-04T08:00:00+00:00"}],
    )
    got = patient.get(f"{BASE}/troughs/{t['id']}").get_json()
    assert got["last_dose_unknown"] is True and got["hours_since_last_dose"] is None
    assert got["not_true_trough"] is False
    post_items(
        patient,
        "doses",
        [{"client_id": cid(), "status": "taken", "taken_at": "2026-03-03T08:00:00+00:00", "dose_mg": 2.0}],
    )
    got = patient.get(f"{BASE}/troughs/{t['id']}").get_json()
    assert got["last_dose_unknown"] is False and got["hours_since_last_dose"] == pytest.approx(24.0)
    [t2] = post_items(
        patient,
        "troughs",
        [
            {
                "client_id": cid(),
                "value_ng_ml": 7.0,
                "drawn_at": "2026-05-04T08:00:00+00:00",
                "last_dose_at": "2026-05-03T09:00:00+00:00",
            }
        ],
    )
    assert patient.get(f"{BASE}/troughs/{t2['id']}").get_json()["last_dose_unknown"] is False


def test_interacting_drug_start_and_stop_open_review_alerts(make_patient: Any, clinician: Any) -> None:
    pat = make_patient(clinician, treatment_status="on_sirolimus")
    pid = pat.patient_id
    results = post_items(
        pat,
        "regimens",
        [
            {
                "client_id": cid(),
                "kind": "interacting_drug_start",
                "effective_at": "2026-03-01T08:00:00+00:00",
                "drug_name": "Rifampicin",
            },
            {
                "client_id": cid(),
                "kind": "interacting_drug_stop",
                "effective_at": "2026-03-08T08:00:00+00:00",
                "drug_name": "Rifampicin",
            },
            {
                "client_id": cid(),
                "kind": "interacting_drug_start",
                "effective_at": "2026-03-09T08:00:00+00:00",
                "drug_name": "Zorblatinib",
            },
        ],
    )
    assert all(r["status"] == "created" and r["alert_id"] for r in results)
    stored = {r["id"]: pat.get(f"{BASE}/regimens/{r['id']}").get_json() for r in results}
    assert [s["interaction"] for s in stored.values()] == ["inducer", "inducer", "unknown"]
    alerts = clinician.get(f"/api/v1/alerts?patient_id={pid}&rule=interacting_drug_change").get_json()[
        "items"
    ]
    by_id = {a["id"]: a for a in alerts}
    assert set(by_id) == {r["alert_id"] for r in results}
    start, stop, unknown = (by_id[r["alert_id"]] for r in results)
    assert {a["severity"] for a in alerts} == {"review"}
    assert (start["numbers"]["interaction"], start["numbers"]["expected_level"]) == ("inducer", "fall")
    assert stop["numbers"]["expected_level"] == "rise"
    assert "rifampin" in start["explanation"] and "inducer" in start["explanation"]
    assert unknown["numbers"]["interaction"] == "unknown"
    assert "not in the interaction catalog" in unknown["explanation"]
    # a dose change raises no interaction alert
    [r] = post_items(
        pat,
        "regimens",
        [
            {
                "client_id": cid(),
                "kind": "dose_change",
                "effective_at": "2026-03-10T08:00:00+00:00",
                "daily_dose_mg": 1.0,
            }
        ],
    )
    assert r.get("alert_id") is None


def test_future_or_before_birth_records_are_refused_per_item(patient: Any, settings: Any) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    skew = settings.max_clock_skew_minutes
    tomorrow = (now + timedelta(days=1)).isoformat()
    fast_clock = (now + timedelta(minutes=skew - 1)).isoformat()
    ok, future, skewed, ancient = post_items(
        patient,
        "spirometry",
        [
            {"client_id": cid(), "measured_at": (now - timedelta(hours=1)).isoformat(), "fev1_l": 2.1},
            {"client_id": cid(), "measured_at": tomorrow, "fev1_l": 2.2},
            {"client_id": cid(), "measured_at": fast_clock, "fev1_l": 2.3},
            {"client_id": cid(), "measured_at": "1901-01-01T08:00:00+00:00", "fev1_l": 2.4},
        ],
    )
    assert (ok["status"], skewed["status"]) == ("created", "created")
    assert future["status"] == "invalid" and "future" in future["errors"]["measured_at"][0]
    assert ancient["status"] == "invalid" and "date of birth" in ancient["errors"]["measured_at"][0]
    stored = patient.get(f"{BASE}/spirometry").get_json()["items"]
    assert sorted(i["fev1_l"] for i in stored) == [2.1, 2.3]
    [trough] = post_items(
        patient,
        "troughs",
        [
            {
                "client_id": cid(),
                "drawn_at": (now - timedelta(hours=2)).isoformat(),
                "value_ng_ml": 8.0,
                "last_dose_at": tomorrow,
            }
        ],
    )
    assert trough["status"] == "invalid" and "last_dose_at" in trough["errors"]


def test_regimen_start_sets_treatment_status(patient: Any, clinician: Any) -> None:
    from datetime import UTC, datetime, timedelta

    def status() -> str:
        got: str = clinician.get(f"/api/v1/patients/{patient.patient_id}").get_json()["treatment_status"]
        return got

    assert status() == "untreated"
    now = datetime.now(UTC)
    [start] = post_items(
        patient,
        "regimens",
        [
            {
                "client_id": cid(),
                "kind": "start",
                "daily_dose_mg": 2.0,
                "effective_at": (now - timedelta(days=9)).isoformat(),
            }
        ],
    )
    assert status() == "on_sirolimus"
    [pause] = post_items(
        patient,
        "regimens",
        [{"client_id": cid(), "kind": "interruption", "effective_at": (now - timedelta(days=2)).isoformat()}],
    )
    assert status() == "interrupted"
    # a dose change does not change the status; deleting the interruption restores it
    post_items(
        patient,
        "regimens",
        [{"client_id": cid(), "kind": "dose_change", "daily_dose_mg": 1.0, "effective_at": now.isoformat()}],
    )
    assert status() == "interrupted"
    assert patient.delete(f"{BASE}/regimens/{pause['id']}").status_code == 204
    assert status() == "on_sirolimus"
    assert start["status"] == "created"


@pytest.mark.parametrize(
    "path", sorted(Path(REPO_ROOT / "api_spec" / "examples").glob("*-item.json")), ids=lambda p: p.stem
)
def test_the_birth_date_check_uses_her_local_date(make_patient: Any, clinician: Any, path: Path) -> None:
    """Born 15 June 2000: in Auckland (UTC+12) 21:00 UTC on the 14th is already the
    morning of the 15th there, so it is accepted; in Los Angeles (UTC-7) 03:00 UTC on
    the 15th is still the evening of the 14th, so it is refused. Every stream, every
    one of its time fields."""
    from backend.streams.registry import STREAMS

    doc = json.loads(path.read_text())
    spec = next(s for s in STREAMS if s.name == doc["stream"])

    def item(moment: str) -> dict[str, Any]:
        fields = {name: moment for name in spec.time_fields if name in doc["example"]}
        return {**doc["example"], **fields, "client_id": cid()}

    auckland = make_patient(clinician, date_of_birth="2000-06-15", timezone="Pacific/Auckland")
    on_the_day, day_before = post_items(
        auckland,
        doc["stream"],
        [item("2000-06-14T21:00:00+00:00"), item("2000-06-14T11:00:00+00:00")],  # 09:00, 23:00 local
    )
    assert on_the_day["status"] == "created", on_the_day
    assert day_before["status"] == "invalid"
    assert all(
        "date of birth" in day_before["errors"][name][0]
        for name in spec.time_fields
        if name in doc["example"]
    )

    los_angeles = make_patient(clinician, date_of_birth="2000-06-15", timezone="America/Los_Angeles")
    evening_before, morning = post_items(
        los_angeles,
        doc["stream"],
        [item("2000-06-15T03:00:00+00:00"), item("2000-06-15T16:00:00+00:00")],  # 20:00 14th, 09:00 15th
    )
    assert evening_before["status"] == "invalid" and "date of birth" in str(evening_before["errors"])
    assert morning["status"] == "created", morning
