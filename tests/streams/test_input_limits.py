"""Mass assignment (API3), limits (API4) and the problem+json shape of every error."""

from __future__ import annotations

import dataclasses
import io
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from backend import create_app
from backend.config import Settings
from backend.patients.models import Patient
from backend.streams.registry import STREAMS

API = "/api/v1"
PROBLEM = "application/problem+json"
PROFILE = {
    "sex_at_birth": "female",
    "date_of_birth": "1980-01-01",
    "height_cm": 160.0,
    "lam_type": "sporadic",
    "timezone": "Europe/Berlin",
}
READ_ONLY_PATIENT = {
    "id": str(uuid.uuid4()),
    "patient_id": str(uuid.uuid4()),
    "role": "clinician",
    "created_at": "2020-01-01T00:00:00+00:00",
    "user_id": str(uuid.uuid4()),
    "change_seq": 99,
    "registered": True,
    "invite_code": "AAAA-BBBB-CCCC",
    "summary": {},
}
READ_ONLY_ITEM = {
    "id": str(uuid.uuid4()),
    "patient_id": str(uuid.uuid4()),
    "seq": 1,
    "created_at": "2020-01-01T00:00:00+00:00",
    "created_by": str(uuid.uuid4()),
    "deleted_at": "2020-01-01T00:00:00+00:00",
    "role": "clinician",
    "fev1_pct_predicted": 150.0,
    "utc_offset_minutes": 60,
}
AT = "2026-03-01T08:30:00+01:00"
ITEMS = {
    "spirometry": {"measured_at": AT, "fev1_l": 2.5},
    "doses": {"taken_at": AT},
    "regimens": {"effective_at": AT, "kind": "start", "daily_dose_mg": 2.0},
    "side-effects": {"onset_at": AT, "term": "mucositis_oral", "severity": "mild"},
    "troughs": {"drawn_at": AT, "value_ng_ml": 8.0},
    "events": {"occurred_at": AT, "kind": "other"},
}
STREAM_NAMES = [s.name for s in STREAMS]


def item(stream: str, **extra: Any) -> dict[str, Any]:
    return {"client_id": str(uuid.uuid4()), **ITEMS[stream], **extra}


def assert_problem(resp: Any, status: int, *, field_errors: bool = False) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == PROBLEM, resp.mimetype
    body: dict[str, Any] = resp.get_json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    if field_errors:
        assert isinstance(body.get("errors"), dict) and body["errors"], body
    return body


def flat_keys(errors: Any) -> set[str]:
    """Every field name mentioned in a (nested) marshmallow error dict."""
    keys: set[str] = set()
    if isinstance(errors, dict):
        for key, value in errors.items():
            keys.add(str(key))
            keys |= flat_keys(value)
    return keys


def patient_count(db_sessionmaker: Any) -> int:
    with db_sessionmaker() as session:
        return int(session.scalar(select(func.count()).select_from(Patient)) or 0)


# ---------------------------------------------------------------- mass assignment


@pytest.mark.parametrize("name", [*sorted(READ_ONLY_PATIENT), "unknown_field"])
def test_patient_create_refuses_read_only_and_unknown_fields(
    clinician: Any, db_sessionmaker: Any, name: str
) -> None:
    before = patient_count(db_sessionmaker)
    body = {**PROFILE, "care_team_id": clinician.team_ids[0], name: READ_ONLY_PATIENT.get(name, "x")}
    problem = assert_problem(clinician.post(f"{API}/patients", json=body), 422, field_errors=True)
    assert name in flat_keys(problem["errors"]), problem
    assert patient_count(db_sessionmaker) == before


def test_patient_create_control(clinician: Any, db_sessionmaker: Any) -> None:
    before = patient_count(db_sessionmaker)
    resp = clinician.post(f"{API}/patients", json={**PROFILE, "care_team_id": clinician.team_ids[0]})
    assert resp.status_code == 201, resp.get_json()
    assert patient_count(db_sessionmaker) == before + 1


@pytest.mark.parametrize(
    "name", [*sorted(READ_ONLY_PATIENT), "care_team_id", "sex_at_birth", "unknown_field"]
)
def test_patient_patch_refuses_read_only_and_unknown_fields(clinician: Any, patient: Any, name: str) -> None:
    url = f"{API}/patients/{patient.patient_id}"
    before = clinician.get(url).get_json()
    value = READ_ONLY_PATIENT.get(name, "male" if name == "sex_at_birth" else "x")
    if name == "care_team_id":
        value = str(uuid.uuid4())
    for actor in (clinician, patient):
        problem = assert_problem(
            actor.patch(url, json={"timezone": "Asia/Tokyo", name: value}), 422, field_errors=True
        )
        assert name in flat_keys(problem["errors"]), problem
    after = clinician.get(url).get_json()
    assert after == before  # the valid timezone next to the bad field was not applied either


def test_patient_may_change_only_her_time_zone(patient: Any, clinician: Any) -> None:
    url = f"{API}/patients/me"
    for body in ({"trough_target_low": 1.0}, {"rule_overrides": {}}, {"height_cm": 170.0}):
        assert_problem(patient.patch(url, json=body), 403)
    resp = patient.patch(url, json={"timezone": "Asia/Tokyo"})
    assert resp.status_code == 200 and resp.get_json()["timezone"] == "Asia/Tokyo"


def test_patient_response_exposes_exactly_the_documented_fields(patient: Any) -> None:
    from backend.patients.schemas import PatientSchema

    body = patient.get(f"{API}/patients/me").get_json()
    assert set(body) == set(PatientSchema._declared_fields)
    assert not {"user_id", "change_seq", "password_hash", "data_changed_at"} & set(body)


@pytest.mark.parametrize("stream", STREAM_NAMES)
def test_stream_items_with_read_only_fields_are_invalid_and_not_stored(patient: Any, stream: str) -> None:
    names = [*sorted(READ_ONLY_ITEM), "unknown_field"]
    bad = [item(stream, **{n: READ_ONLY_ITEM.get(n, "x")}) for n in names]
    good = item(stream)
    resp = patient.post(f"{API}/patients/me/{stream}", json={"items": [*bad, good]})
    assert resp.status_code == 200, resp.get_json()
    results = resp.get_json()["results"]
    assert len(results) == len(bad) + 1
    for name, sent, result in zip(names, bad, results, strict=False):
        assert result["status"] == "invalid", (name, result)
        assert result["id"] is None and result["client_id"] == sent["client_id"]
        assert name in flat_keys(result["errors"]), (name, result)
    assert results[-1]["status"] == "created"
    stored = patient.get(f"{API}/patients/me/{stream}").get_json()["items"]
    assert [r["client_id"] for r in stored] == [good["client_id"]]
    assert stored[0]["id"] == results[-1]["id"]


def test_batch_envelope_refuses_unknown_fields(patient: Any) -> None:
    resp = patient.post(
        f"{API}/patients/me/doses", json={"items": [item("doses")], "patient_id": str(uuid.uuid4())}
    )
    problem = assert_problem(resp, 422, field_errors=True)
    assert "patient_id" in flat_keys(problem["errors"])
    assert patient.get(f"{API}/patients/me/doses").get_json()["items"] == []


@pytest.mark.parametrize("body", [[], {"items": []}, {"items": {}}, {}, "items"])
def test_batch_envelope_must_be_an_object_with_a_non_empty_list(patient: Any, body: Any) -> None:
    assert_problem(patient.post(f"{API}/patients/me/doses", json=body), 422, field_errors=True)


def test_an_absent_batch_is_400(patient: Any) -> None:
    assert_problem(patient.post(f"{API}/patients/me/doses"), 400)


# ---------------------------------------------------------------- limits


def test_body_above_the_limit_is_413(patient: Any, settings: Settings) -> None:
    padding = "x" * (settings.max_body_bytes + 1)
    resp = patient.post(f"{API}/patients/me/events", json={"items": [item("events", note=padding)]})
    assert_problem(resp, 413)
    resp = patient.client.post(f"{API}/auth/login", json={"email": "a@example.org", "password": padding})
    assert_problem(resp, 413)
    assert patient.get(f"{API}/patients/me/events").get_json()["items"] == []


@pytest.fixture
def small_body_client(settings: Settings, db_sessionmaker: Any) -> Any:
    app = create_app(dataclasses.replace(settings, max_body_bytes=4096))
    app.config["TESTING"] = True
    yield app.test_client()
    app.extensions["lamtrack.engine"].dispose()


def test_body_limit_follows_settings(small_body_client: FlaskClient, patient: Any) -> None:
    headers = patient.headers
    url = f"{API}/patients/me/events"
    ok = small_body_client.post(url, json={"items": [item("events", note="y" * 1000)]}, headers=headers)
    assert ok.status_code == 200, ok.get_json()
    big = small_body_client.post(url, json={"items": [item("events") for _ in range(60)]}, headers=headers)
    assert_problem(big, 413)
    # A body without Content-Length (chunked) is cut off at the same limit.
    chunked = io.BytesIO(b'{"items": [{"a": "' + b"z" * 8000 + b'"}]}')
    streamed = small_body_client.post(
        url,
        input_stream=chunked,
        headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    assert streamed.status_code in (413, 422), streamed.get_data(as_text=True)
    assert streamed.mimetype == PROBLEM
    stored = small_body_client.get(url, headers=headers).get_json()["items"]
    assert len(stored) == 1


def test_batch_of_501_is_refused_and_nothing_stored(patient: Any) -> None:
    url = f"{API}/patients/me/doses"
    problem = assert_problem(
        patient.post(url, json={"items": [item("doses") for _ in range(501)]}), 422, field_errors=True
    )
    assert "items" in flat_keys(problem["errors"])
    assert patient.get(url).get_json()["items"] == []
    resp = patient.post(url, json={"items": [item("doses") for _ in range(500)]})
    assert resp.status_code == 200
    assert {r["status"] for r in resp.get_json()["results"]} == {"created"}
    page = patient.get(url, query_string={"limit": 500}).get_json()
    assert len(page["items"]) == 500 and page["next_cursor"] is None


def list_urls(patient: Any) -> list[str]:
    return [f"{API}/patients/me/{s}" for s in STREAM_NAMES] + [
        f"{API}/patients/me/changes",
        f"{API}/patients/me/alerts",
    ]


def test_page_size_limits(patient: Any, clinician: Any) -> None:
    urls = [(patient, u) for u in list_urls(patient)] + [
        (clinician, f"{API}/patients"),
        (clinician, f"{API}/alerts"),
    ]
    for actor, url in urls:
        for bad in (501, 0, -1, 10**9, "many"):
            problem = assert_problem(actor.get(url, query_string={"limit": bad}), 422, field_errors=True)
            assert "limit" in flat_keys(problem["errors"]), (url, bad, problem)
        assert actor.get(url, query_string={"limit": 500}).status_code == 200, url


def test_paging_walks_every_item_once(patient: Any) -> None:
    url = f"{API}/patients/me/troughs"
    sent = [item("troughs", drawn_at=f"2026-03-{d:02d}T08:00:00+00:00") for d in range(1, 8)]
    assert patient.post(url, json={"items": sent}).status_code == 200
    seen: list[str] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"limit": 3}
        if cursor:
            query["cursor"] = cursor
        page = patient.get(url, query_string=query).get_json()
        seen += [r["client_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [s["client_id"] for s in sent]


@pytest.mark.parametrize(
    "cursor", ["!!!", "bm90IGpzb24", "WzFd", "W10", "x" * 300, "WyJub3QtYS1kYXRlIiwgIngiXQ"]
)
def test_bad_cursors_are_422(patient: Any, clinician: Any, cursor: str) -> None:
    for actor, url in [(patient, u) for u in list_urls(patient)] + [
        (clinician, f"{API}/patients"),
        (clinician, f"{API}/alerts"),
    ]:
        resp = actor.get(url, query_string={"cursor": cursor})
        if url.endswith(f"{API}/patients") and cursor == "WzFd":
            assert resp.status_code == 200  # [1] is a well-formed one-key cursor there
            continue
        assert_problem(resp, 422, field_errors=True)


# ---------------------------------------------------------------- problem+json everywhere


def test_every_error_is_problem_json(client: FlaskClient, patient: Any, clinician: Any) -> None:
    doses = f"{API}/patients/me/doses"
    cases = [
        (401, client.get(f"{API}/patients/me")),
        (403, patient.get(f"{API}/patients")),
        (403, patient.post(f"{API}/patients", json={**PROFILE, "care_team_id": "x" * 36})),
        (404, patient.get(f"{API}/patients/{uuid.uuid4()}")),
        (404, client.get(f"{API}/no-such-route")),
        (404, patient.get(f"{doses}/{uuid.uuid4()}")),
        (405, patient.client.put(doses, json={}, headers=patient.headers)),
        (409, clinician.post(f"{API}/patients/{patient.patient_id}/invite")),
        (422, patient.post(doses, data="{not json", content_type="application/json")),
        (422, patient.post(doses, data="items=1", content_type="text/plain")),
        (422, client.post(f"{API}/auth/login", json={"email": "a@example.org"})),
        (422, client.post(f"{API}/auth/login", json=["a"])),
        (422, patient.get(doses, query_string={"since": "yesterday"})),
        (422, patient.get(doses, query_string={"since": "2026-01-01T00:00:00"})),
    ]
    for expected, resp in cases:
        status = resp.status_code
        assert status == expected or (expected == 422 and status in (400, 415)), (
            expected,
            status,
            resp.get_data(as_text=True)[:300],
        )
        body = assert_problem(resp, status)
        assert "Traceback" not in resp.get_data(as_text=True)
        if status == 422:
            assert isinstance(body.get("errors"), dict), body
    allowed = cases[6][1].headers.get("Allow", "")
    assert "POST" in allowed and "GET" in allowed
