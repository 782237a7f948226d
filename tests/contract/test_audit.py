"""Audit trail: every read and write of a patient's data and every auth event
writes a row (actor, action, patient, resource, outcome, time, request id),
without the values themselves."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from backend.audit import AuditEvent

API = "/api/v1"


def audit_rows(db_sessionmaker: Any, request_id: str) -> list[AuditEvent]:
    with db_sessionmaker() as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)))
        session.expunge_all()
        return rows


def rid() -> str:
    return f"test-{uuid.uuid4().hex}"


def account_id(actor: Any) -> str:
    import jwt

    return str(jwt.decode(actor.token, options={"verify_signature": False})["sub"])


def test_reads_and_writes_of_patient_data_are_audited(
    patient: Any, clinician: Any, db_sessionmaker: Any
) -> None:
    value = 2.345
    calls: list[tuple[Any, str, str, str, str]] = []
    item = {"client_id": str(uuid.uuid4()), "measured_at": "2026-03-01T08:30:00+01:00", "fev1_l": value}
    r = rid()
    resp = patient.client.post(
        f"{API}/patients/me/spirometry",
        json={"items": [item]},
        headers={**patient.headers, "X-Request-ID": r},
    )
    record_id = resp.get_json()["results"][0]["id"]
    calls.append((patient, r, "spirometry.create", "patient", "success"))
    pid = patient.patient_id
    for actor, method, url, action in [
        (patient, "GET", f"{API}/patients/me/spirometry", "spirometry.read"),
        (clinician, "GET", f"{API}/patients/{pid}/spirometry/{record_id}", "spirometry.read"),
        (clinician, "GET", f"{API}/patients/{pid}", "patient.read"),
        (patient, "GET", f"{API}/patients/me/changes", "changes.read"),
        (clinician, "PATCH", f"{API}/patients/{pid}", "patient.update"),
        (patient, "DELETE", f"{API}/patients/me/spirometry/{record_id}", "spirometry.delete"),
        (clinician, "GET", f"{API}/patients/{pid}/alerts", "alert.list"),
    ]:
        r = rid()
        kwargs: dict[str, Any] = {"headers": {**actor.headers, "X-Request-ID": r}}
        if method == "PATCH":
            kwargs["json"] = {"trough_target_high": 14.0}
        resp = actor.client.open(url, method=method, **kwargs)
        assert resp.status_code < 300, (url, resp.get_json())
        assert resp.headers["X-Request-ID"] == r
        calls.append((actor, r, action, "clinician" if actor is clinician else "patient", "success"))
    for actor, r, action, role, outcome in calls:
        rows = audit_rows(db_sessionmaker, r)
        assert [row.action for row in rows] == [action], (action, [x.action for x in rows])
        row = rows[0]
        assert row.actor_id == account_id(actor)
        assert row.actor_role == role
        assert row.patient_id == pid
        assert row.outcome == outcome
        assert row.at is not None and row.ip
        text = " ".join(str(getattr(row, c)) for c in ("detail", "resource_id", "resource_type"))
        assert "2.345" not in text and "2,345" not in text


def test_auth_events_are_audited(client: Any, patient: Any, db_sessionmaker: Any) -> None:
    def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        r = rid()
        client.post(url, json=body, headers={**(headers or {}), "X-Request-ID": r})
        return r

    password = "correct horse battery staple"
    denied = post(f"{API}/auth/login", {"email": patient.email, "password": "wrong one here"})
    unknown = post(f"{API}/auth/login", {"email": "nobody@example.org", "password": "x" * 12})
    ok = post(f"{API}/auth/login", {"email": patient.email, "password": password})
    rotate = post(f"{API}/auth/refresh", {"refresh_token": patient.refresh_token})
    reuse = post(f"{API}/auth/refresh", {"refresh_token": patient.refresh_token})
    bad_invite = post(
        f"{API}/auth/register",
        {"invite_code": "ABCD-EFGH-JKLM", "email": "x@example.org", "password": "long enough password"},
    )
    expected = {
        denied: ("auth.login", "denied"),
        unknown: ("auth.login", "denied"),
        ok: ("auth.login", "success"),
        rotate: ("auth.refresh", "success"),
        reuse: ("auth.refresh_reuse", "denied"),
        bad_invite: ("auth.register", "denied"),
    }
    for r, (action, outcome) in expected.items():
        rows = audit_rows(db_sessionmaker, r)
        assert [(x.action, x.outcome) for x in rows] == [(action, outcome)], (action, rows)
        # The password never reaches the trail.
        assert all(password not in str(x.detail) for x in rows)
    assert audit_rows(db_sessionmaker, denied)[0].actor_id == account_id(patient)
    assert audit_rows(db_sessionmaker, unknown)[0].actor_id is None

    login = client.post(f"{API}/auth/login", json={"email": patient.email, "password": password}).get_json()
    out = post(
        f"{API}/auth/logout",
        {"refresh_token": login["refresh_token"]},
        headers={"Authorization": f"Bearer {login['access_token']}"},
    )
    assert [x.action for x in audit_rows(db_sessionmaker, out)] == ["auth.logout"]


def test_refused_access_is_audited_as_denied(patient: Any, make_clinician: Any, db_sessionmaker: Any) -> None:
    """A stranger's 404 is in the trail as a denied attempt, not as a read."""
    stranger = make_clinician()
    r = rid()
    resp = stranger.client.get(
        f"{API}/patients/{patient.patient_id}/spirometry", headers={**stranger.headers, "X-Request-ID": r}
    )
    assert resp.status_code == 404
    [row] = audit_rows(db_sessionmaker, r)
    assert (row.action, row.outcome, row.actor_id) == ("patient.access", "denied", stranger.user_id)
    assert row.resource_id == patient.patient_id


def test_request_id_is_generated_when_missing_or_unusable(patient: Any, db_sessionmaker: Any) -> None:
    for sent in (None, "x" * 65, "bad\tid"):
        headers = dict(patient.headers)
        if sent is not None:
            headers["X-Request-ID"] = sent
        resp = patient.client.get(f"{API}/patients/me", headers=headers)
        got = resp.headers["X-Request-ID"]
        assert got and got != sent
        uuid.UUID(got)
        assert [x.action for x in audit_rows(db_sessionmaker, got)] == ["patient.read"]
