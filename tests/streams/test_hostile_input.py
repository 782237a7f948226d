"""Hostile and broken input: each bad item of a batch is answered `invalid` and
its neighbours are stored; nothing bad reaches a row that later breaks a read;
every answer is strict JSON or problem+json."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.streams.registry import STREAMS
from backend.web import StrictJSONProvider

API = "/api/v1"
AT = "2026-03-01T08:30:00+01:00"
ITEMS = {
    "spirometry": {"measured_at": AT, "fev1_l": 2.5, "device": {"manufacturer": "Acme"}},
    "doses": {"taken_at": AT},
    "regimens": {"effective_at": AT, "kind": "start", "daily_dose_mg": 2.0},
    "side-effects": {"onset_at": AT, "term": "mucositis_oral", "severity": "mild"},
    "troughs": {"drawn_at": AT, "value_ng_ml": 8.0, "last_dose_at": "2026-02-28T20:00:00+01:00"},
    "events": {"occurred_at": AT, "kind": "other"},
}
TIME_FIELDS = {s.name: s.time_field for s in STREAMS}
HOSTILE_STRINGS = ["\ud800", "a\udfffb", "nul\x00byte"]
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+14:00",  # leaves year 1 when converted to UTC
    "9999-12-31T23:59:59-12:00",  # leaves year 9999 when converted to UTC
    "0001-01-01T00:00:00Z",
    "2100-01-01T00:00:00Z",
    "9999-01-01T00:00:00Z",
]


def item(stream: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), **ITEMS[stream], **extra}


def string_fields(stream: str) -> list[str]:
    spec = next(s for s in STREAMS if s.name == stream)
    from marshmallow import fields

    return [
        n
        for n, f in spec.item_schema().load_fields.items()
        if type(f) is not fields.UUID and isinstance(f, fields.String)
    ]


def post_batch(patient: Any, stream: str, items: list[Any]) -> list[dict[str, Any]]:
    resp = patient.post(f"{API}/patients/me/{stream}", json={"items": items})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    results: list[dict[str, Any]] = resp.get_json()["results"]
    return results


@pytest.mark.parametrize("stream", list(ITEMS))
def test_a_bad_time_or_string_fails_only_its_own_item(patient: Any, stream: str) -> None:
    bad = [item(stream, **{TIME_FIELDS[stream]: t}) for t in HOSTILE_TIMES]
    bad += [item(stream, **{TIME_FIELDS[stream]: AT + s}) for s in HOSTILE_STRINGS]
    bad += [item(stream, client_id=s) for s in HOSTILE_STRINGS]
    good = item(stream)
    results = post_batch(patient, stream, [*bad, good])
    assert [r["status"] for r in results] == ["invalid"] * len(bad) + ["created"]
    listed = patient.get(f"{API}/patients/me/{stream}")
    assert listed.status_code == 200
    assert [r["client_id"] for r in listed.get_json()["items"]] == [good["client_id"]]
    assert patient.get(f"{API}/patients/me/changes").status_code == 200


def test_free_text_with_surrogates_or_nul_is_invalid_per_item(patient: Any) -> None:
    bad = [item("spirometry", device={"manufacturer": s}) for s in HOSTILE_STRINGS]
    bad += (
        [item("side-effects", notes=s) for s in HOSTILE_STRINGS]
        if "notes" in string_fields("side-effects")
        else []
    )
    good = item("spirometry")
    results = post_batch(patient, "spirometry", [*bad[:3], good])
    assert [r["status"] for r in results] == ["invalid"] * 3 + ["created"]


def test_a_trough_with_an_impossible_last_dose_is_refused_and_reads_keep_working(patient: Any) -> None:
    bad = item("troughs", last_dose_at="0001-01-01T00:00:00+00:00", drawn_at="2026-03-01T08:00:00-12:00")
    good = item("troughs")
    results = post_batch(patient, "troughs", [bad, good])
    assert [r["status"] for r in results] == ["invalid", "created"]
    for url in ("troughs", "changes", ""):
        assert patient.get(f"{API}/patients/me/{url}".rstrip("/")).status_code == 200


@pytest.mark.parametrize("stream", list(ITEMS))
def test_numbers_sent_as_strings_and_future_times_are_refused(patient: Any, stream: str) -> None:
    future = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    bad = [item(stream, **{TIME_FIELDS[stream]: future})]
    numeric = {"spirometry": "fev1_l", "regimens": "daily_dose_mg", "troughs": "value_ng_ml"}.get(stream)
    if numeric:
        bad.append(item(stream, **{numeric: str(ITEMS[stream][numeric])}))
        bad.append(item(stream, **{numeric: True}))
        bad.append(item(stream, **{numeric: 10**400}))
    results = post_batch(patient, stream, [*bad, item(stream)])
    assert [r["status"] for r in results] == ["invalid"] * len(bad) + ["created"]


def test_deeply_nested_json_is_a_problem_before_sign_in(client: Any) -> None:
    body = "[" * 50_000 + "]" * 50_000
    resp = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize("cursor", ["9" * 40, "²", "-1"])
def test_changes_cursor_out_of_range_is_a_problem(patient: Any, cursor: str) -> None:
    resp = patient.get(f"{API}/patients/me/changes", query_string={"cursor": cursor})
    assert resp.status_code == 422, resp.get_data(as_text=True)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_list_filters_and_cursors_out_of_range_are_problems(patient: Any, moment: str) -> None:
    for args in ({"since": moment}, {"until": moment}):
        resp = patient.get(f"{API}/patients/me/spirometry", query_string=args)
        assert resp.status_code == 422, resp.get_data(as_text=True)
    import base64

    cursor = base64.urlsafe_b64encode(json.dumps([moment, "x"]).encode()).decode().rstrip("=")
    resp = patient.get(f"{API}/patients/me/spirometry", query_string={"cursor": cursor})
    assert resp.status_code == 422, resp.get_data(as_text=True)


def test_nul_in_a_query_filter_is_a_problem(patient: Any) -> None:
    resp = patient.get(f"{API}/patients/me/spirometry", query_string={"since": "2026-01-01\x00"})
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"


def test_surrogates_in_login_are_a_problem_not_a_crash(client: Any) -> None:
    resp = client.post(f"{API}/auth/login", json={"email": "a\ud800@example.org", "password": "x\ud800" * 12})
    assert resp.status_code in (401, 422), resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize("email", ["a@x\ud800.com", "a@example\udfff.org"])
@pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
def test_a_surrogate_in_an_email_domain_is_refused(client: Any, path: str, email: str) -> None:
    # the address check of the email field alone lets these through to the database
    body = {"email": email, "password": "correct horse battery staple"}
    if path == "/auth/register":
        body["invite_code"] = "no-such-code"
    resp = client.post(f"{API}{path}", json=body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert "email" in resp.get_data(as_text=True)


def test_json_out_has_no_infinity(app: Any) -> None:
    text = StrictJSONProvider(app).dumps(
        {"ci_low": float("-inf"), "ci_high": [float("inf"), float("nan"), 1.5]}
    )
    assert json.loads(text) == {"ci_low": None, "ci_high": [None, None, 1.5]}
    assert "Infinity" not in text and "NaN" not in text


_hostile_text = st.one_of(
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0xDFFF), max_size=12),
    st.sampled_from(HOSTILE_STRINGS),
)
_hostile_time = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.builds(
        lambda d, h: d.isoformat() + f"{'+' if h >= 0 else '-'}{abs(h):02d}:00",
        st.datetimes(),
        st.integers(-12, 14),
    ),
    st.sampled_from(HOSTILE_TIMES),
)
_hostile_value = st.one_of(_hostile_text, _hostile_time, st.integers(), st.floats(), st.booleans(), st.none())


@pytest.mark.parametrize("stream", list(ITEMS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_hostile_values_in_any_field_never_break_a_batch(
    patient: Any, stream: str, data: Any
) -> None:
    spec = next(s for s in STREAMS if s.name == stream)
    names = sorted(spec.item_schema().load_fields)
    bad = item(stream)
    for name in data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        bad[name] = data.draw(_hostile_value)
    good = item(stream)
    results = post_batch(patient, stream, [bad, good])
    assert results[-1]["status"] == "created"
    assert results[0]["status"] in ("created", "invalid")
    for url in (stream, "changes"):
        resp = patient.get(f"{API}/patients/me/{url}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        json.loads(resp.get_data(as_text=True), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


@pytest.mark.parametrize(
    ("stream", "report"),
    [
        ("events", {"kind": "pneumothorax", "occurred_at": "2026-05-01T08:00:00+02:00"}),
        (
            "side-effects",
            {
                "onset_at": "2026-05-01T08:00:00+00:00",
                "term": "dyspnea",
                "severity": "severe",
                "temperature_c": 38.6,
            },
        ),
    ],
)
def test_a_retried_urgent_report_answers_the_same_alert_and_advice(
    patient: Any, clinician: Any, stream: str, report: dict[str, Any]
) -> None:
    sent = {"client_id": str(uuid.uuid4()), **report}
    [first] = post_batch(patient, stream, [sent])
    [again] = post_batch(patient, stream, [sent])
    assert first["status"] == "created" and first["alert_id"] and first["patient_message"]
    assert again["status"] == "duplicate"
    assert (again["id"], again["alert_id"], again["patient_message"]) == (
        first["id"],
        first["alert_id"],
        first["patient_message"],
    )
    assert len(clinician.get(f"{API}/alerts").get_json()["items"]) == 1


@pytest.mark.parametrize(
    "override",
    [{"trend_window_days": 10**12}, {"trend_window_days": 10**400}, {"fev1_plausible_max_l": 10**400}],
)
def test_an_implausible_rule_override_is_refused(clinician: Any, override: dict[str, Any]) -> None:
    team = clinician.team_ids[0]
    resp = clinician.patch(f"{API}/teams/{team}", json={"settings": {"rule_overrides": override}})
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
