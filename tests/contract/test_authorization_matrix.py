"""Object-level authorization (OWASP API1), built from `app.url_map`.

Every route under /api/v1 that carries an id, every method, every role:
patient A and her clinician (team 1) own the target; patient B, the clinician
of team 2 and an anonymous caller attack it. Someone else's id answers exactly
like an id that does not exist (404, no existence oracle), an anonymous caller
gets 401, and afterwards every table holds exactly what it held before.

`CASES` lists each covered (rule, method). A new id-bearing route that is not
in it fails `test_every_id_route_is_covered` until someone says here how to
attack it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from backend.models import metadata
from backend.streams.registry import STREAMS

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
ID_ARGS = ("pid", "record_id", "alert_id", "team_id")


def stream_item(name: str) -> dict[str, Any]:
    """One valid item of each stream, with a fresh client id."""
    at = "2026-03-01T08:30:00+01:00"
    cid = str(uuid.uuid4())
    return {
        "spirometry": {"client_id": cid, "measured_at": at, "fev1_l": 2.5, "fvc_l": 3.1},
        "doses": {"client_id": cid, "taken_at": at, "status": "taken", "dose_mg": 2.0},
        "regimens": {"client_id": cid, "effective_at": at, "kind": "start", "daily_dose_mg": 2.0},
        "side-effects": {"client_id": cid, "onset_at": at, "term": "mucositis_oral", "severity": "mild"},
        "troughs": {"client_id": cid, "drawn_at": at, "value_ng_ml": 8.0},
        "events": {"client_id": cid, "occurred_at": at, "kind": "other"},
    }[name]


@dataclass(frozen=True)
class Case:
    """How to call one (rule, method): a body maker, who owns the target and
    what the owner gets, and whether the route is for clinicians only."""

    body: Callable[[], Any] | None = None
    owners: dict[str, int] = field(default_factory=dict)
    clinician_only: bool = False
    stream: str | None = None


def _cases() -> dict[tuple[str, str], Case]:
    both = {"patient_a": 200, "clin1": 200}
    cases: dict[tuple[str, str], Case] = {
        (f"{PREFIX}/patients/<pid>", "GET"): Case(owners=both),
        (f"{PREFIX}/patients/<pid>", "PATCH"): Case(body=lambda: {"timezone": "Europe/Paris"}, owners=both),
        # A registered patient has no use for a new invite: her clinician gets 409.
        (f"{PREFIX}/patients/<pid>/invite", "POST"): Case(owners={"clin1": 409}, clinician_only=True),
        (f"{PREFIX}/teams/<team_id>", "GET"): Case(owners={"clin1": 200}, clinician_only=True),
        (f"{PREFIX}/teams/<team_id>", "PATCH"): Case(
            body=lambda: {"name": "Renamed team"}, owners={"clin1": 200}, clinician_only=True
        ),
        (f"{PREFIX}/patients/<pid>/changes", "GET"): Case(owners=both),
        (f"{PREFIX}/patients/<pid>/alerts", "GET"): Case(owners=both),
        (f"{PREFIX}/patients/<pid>/reminders", "GET"): Case(owners=both),
        (f"{PREFIX}/patients/<pid>/trend", "GET"): Case(owners=both),
        (f"{PREFIX}/patients/<pid>/trough-schedule", "GET"): Case(owners=both),
        (f"{PREFIX}/patients/<pid>/fhir", "GET"): Case(owners=both),
        (f"{PREFIX}/teams/<team_id>/cohort-report", "GET"): Case(owners={"clin1": 200}, clinician_only=True),
        (f"{PREFIX}/alerts/<alert_id>", "GET"): Case(owners={"clin1": 200}, clinician_only=True),
        (f"{PREFIX}/alerts/<alert_id>/acknowledge", "POST"): Case(
            body=lambda: {"note": "on it"}, owners={"clin1": 200}, clinician_only=True
        ),
        (f"{PREFIX}/alerts/<alert_id>/snooze", "POST"): Case(
            body=lambda: {"hours": 2}, owners={"clin1": 200}, clinician_only=True
        ),
        (f"{PREFIX}/alerts/<alert_id>/resolve", "POST"): Case(
            body=lambda: {"note": "seen"}, owners={"clin1": 200}, clinician_only=True
        ),
    }
    for spec in STREAMS:
        name = spec.name
        cases[(f"{PREFIX}/patients/<pid>/{name}", "GET")] = Case(owners=both, stream=name)
        cases[(f"{PREFIX}/patients/<pid>/{name}", "POST")] = Case(
            body=lambda name=name: {"items": [stream_item(name)]}, owners=both, stream=name
        )
        cases[(f"{PREFIX}/patients/<pid>/{name}/<record_id>", "GET")] = Case(owners=both, stream=name)
        cases[(f"{PREFIX}/patients/<pid>/{name}/<record_id>", "DELETE")] = Case(
            owners={"patient_a": 204, "clin1": 204}, stream=name
        )
    return cases


CASES = _cases()


def id_routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/") or not rule.arguments:
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            found.add((rule.rule, method))
    return found


# ---------------------------------------------------------------- the world


@dataclass
class Side:
    """One team's world: its clinician, its patient, one record per stream and an alert."""

    clinician: Any
    patient: Any
    team_id: str
    patient_id: str
    records: dict[str, str]
    alert_id: str


def _add_alert(db_sessionmaker: sessionmaker[Session], patient_id: str, team_id: str) -> str:
    from backend.alerts.models import Alert

    now = datetime.now(UTC) - timedelta(hours=1)
    with db_sessionmaker() as session:
        alert = Alert(
            patient_id=patient_id,
            care_team_id=team_id,
            rule="acute_fev1_drop",
            severity="review",
            episode_key=f"matrix-{uuid.uuid4()}",
            source="evaluation",
            status="open",
            opened_at=now,
            last_seen_at=now,
            numbers={"drop_pct": 12.0},
            explanation="FEV1 fell.",
            patient_message=None,
            notify_count=0,
            created_at=now,
            updated_at=now,
        )
        alert.open_episode_key = alert.episode_key
        session.add(alert)
        session.commit()
        return alert.id


def _side(make_clinician: Any, make_patient: Any, db_sessionmaker: Any) -> Side:
    clinician = make_clinician()
    patient = make_patient(clinician)
    records = {}
    for spec in STREAMS:
        resp = patient.post(f"{PREFIX}/patients/me/{spec.name}", json={"items": [stream_item(spec.name)]})
        assert resp.status_code == 200, resp.get_json()
        [result] = resp.get_json()["results"]
        assert result["status"] == "created", result
        records[spec.name] = result["id"]
    alert_id = _add_alert(db_sessionmaker, patient.patient_id, clinician.team_ids[0])
    return Side(clinician, patient, clinician.team_ids[0], patient.patient_id, records, alert_id)


@pytest.fixture
def world(make_clinician: Any, make_patient: Any, db_sessionmaker: Any) -> dict[str, Side]:
    return {
        "a": _side(make_clinician, make_patient, db_sessionmaker),
        "b": _side(make_clinician, make_patient, db_sessionmaker),
    }


def fill(rule: str, side: Side, case: Case, *, pid: str | None = None, record_id: str | None = None) -> str:
    url = rule
    values = {
        "pid": pid or side.patient_id,
        "team_id": side.team_id,
        "alert_id": side.alert_id,
        "record_id": record_id or (side.records[case.stream] if case.stream else ""),
    }
    for name in ID_ARGS:
        url = url.replace(f"<{name}>", values[name])
    assert "<" not in url, f"no value for a parameter of {rule}"
    return url


def call(client: FlaskClient, method: str, url: str, headers: dict[str, str], body: Any) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return client.open(url, method=method, **kwargs)


def snapshot(db_sessionmaker: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table except the audit trail (which must grow)."""
    out = {}
    with db_sessionmaker() as session:
        for table in metadata.sorted_tables:
            if table.name == "audit_events":
                continue
            rows = session.execute(select(table)).all()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def comparable(resp: Any) -> tuple[int, Any]:
    body = resp.get_json(silent=True)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "request_id"}
    return resp.status_code, body


def assert_problem(resp: Any, status: int, where: str) -> None:
    assert resp.status_code == status, (where, resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == PROBLEM, (where, resp.mimetype)
    body = resp.get_json()
    assert body["status"] == status and body["title"], (where, body)


# ---------------------------------------------------------------- tests


def test_every_id_route_is_covered(app: Flask) -> None:
    found = id_routes(app)
    missing = sorted(found - set(CASES))
    stale = sorted(set(CASES) - found)
    assert not missing, f"id-bearing routes the authorization matrix does not cover: {missing}"
    assert not stale, f"matrix cases for routes that no longer exist: {stale}"


def test_matrix_someone_elses_ids_are_not_found_and_nothing_changes(
    app: Flask,
    client: FlaskClient,
    world: dict[str, Side],
    db_sessionmaker: sessionmaker[Session],
) -> None:
    a, b = world["a"], world["b"]
    attackers = {
        "patient_b": b.patient.headers,
        "clin2": b.clinician.headers,
        "anon": {},
    }
    missing_ids = Side(
        None,
        None,
        str(uuid.uuid4()),
        str(uuid.uuid4()),
        {s.name: str(uuid.uuid4()) for s in STREAMS},
        str(uuid.uuid4()),
    )
    before = snapshot(db_sessionmaker)
    checked = 0
    for (rule, method), case in sorted(CASES.items()):
        for role, headers in attackers.items():
            body = case.body() if case.body else None
            url = fill(rule, a, case)
            where = f"{role} {method} {url} ({rule})"
            resp = call(client, method, url, headers, body)
            if role == "anon":
                assert_problem(resp, 401, where)
                continue
            expected = 403 if (case.clinician_only and role == "patient_b") else 404
            assert_problem(resp, expected, where)
            # The same answer as for an id that does not exist at all.
            ghost = call(
                client, method, fill(rule, missing_ids, case), headers, case.body() if case.body else None
            )
            assert comparable(ghost) == comparable(resp), where
            checked += 1
        # Own patient id with the other side's record / alert: still not found.
        if case.stream and "<record_id>" in rule:
            for role, actor, pid in (
                ("patient_b", b.patient, "me"),
                ("patient_b", b.patient, b.patient_id),
                ("clin2", b.clinician, b.patient_id),
            ):
                url = fill(rule, b, case, pid=pid, record_id=a.records[case.stream])
                resp = call(client, method, url, actor.headers, None)
                assert_problem(resp, 404, f"{role} {method} {url} (foreign record)")
                checked += 1
    assert checked > 3 * len(CASES) // 2
    after = snapshot(db_sessionmaker)
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"an unauthorized request changed {changed}"


def test_matrix_clinician_using_me_is_not_found(
    world: dict[str, Side], client: FlaskClient, db_sessionmaker: Any
) -> None:
    a = world["a"]
    before = snapshot(db_sessionmaker)
    for (rule, method), case in sorted(CASES.items()):
        if "<pid>" not in rule:
            continue
        url = fill(rule, a, case, pid="me")
        resp = call(client, method, url, a.clinician.headers, case.body() if case.body else None)
        assert_problem(resp, 404, f"clinician {method} {url}")
    assert snapshot(db_sessionmaker) == before


def test_matrix_owners_reach_their_own_data(world: dict[str, Side], client: FlaskClient) -> None:
    """The positive control: the same URLs and bodies work for their owners, so
    the 404s above come from the permission check, not from a broken request."""
    a = world["a"]
    actors = {"patient_a": a.patient, "clin1": a.clinician}
    # Reads and harmless writes first, deletions and alert transitions last.
    order = sorted(CASES.items(), key=lambda kv: (kv[0][1] == "DELETE", kv[0][0].endswith("/resolve"), kv[0]))
    for (rule, method), case in order:
        for role, expected in case.owners.items():
            pids = [a.patient_id, "me"] if role == "patient_a" and "<pid>" in rule else [None]
            for pid in pids:
                if method == "DELETE" and pid == "me":
                    continue  # already deleted through the explicit id
                url = fill(rule, a, case, pid=pid)
                resp = call(client, method, url, actors[role].headers, case.body() if case.body else None)
                assert resp.status_code == expected, (role, method, url, resp.get_json())


def test_patient_cannot_reach_clinician_only_routes_even_for_her_own_team(
    world: dict[str, Side], client: FlaskClient
) -> None:
    a = world["a"]
    for (rule, method), case in sorted(CASES.items()):
        if not case.clinician_only:
            continue
        url = fill(rule, a, case)
        resp = call(client, method, url, a.patient.headers, case.body() if case.body else None)
        assert_problem(resp, 403, f"patient {method} {url}")


def test_snapshot_sees_changes(world: dict[str, Side], db_sessionmaker: Any) -> None:
    """The unchanged-data check would catch a change: guard against a blind snapshot."""
    a = world["a"]
    before = snapshot(db_sessionmaker)
    resp = a.patient.patch(f"{PREFIX}/patients/me", json={"timezone": "Europe/Paris"})
    assert resp.status_code == 200
    assert snapshot(db_sessionmaker) != before
    with db_sessionmaker() as session:
        tz = session.execute(
            text("SELECT timezone FROM patients WHERE id = :id"), {"id": a.patient_id}
        ).scalar_one()
    assert tz == "Europe/Paris"


# ---------------------------------------------------------------- web pages
# The care team's web pages (backend/webui) take a session cookie, not a bearer
# token: the other team's clinician signs in through the real forms (password,
# then TOTP), anonymous callers are sent to sign-in, and patients cannot sign in.

WEB_CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("/alerts/<alert_id>", "GET"): {"owner": 200},
    ("/alerts/<alert_id>/<action>", "POST"): {
        "owner": 302,
        "action": "acknowledge",
        "form": {"note": "on it"},
    },
    ("/patients/<pid>", "GET"): {"owner": 200},
    ("/patients/<pid>/reviewed", "POST"): {"owner": 302, "form": {}},
    ("/teams/<team_id>/cohort-report", "GET"): {"owner": 200},
}


def web_id_routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("webui.") and set(rule.arguments) & set(ID_ARGS):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                found.add((rule.rule, method))
    return found


def test_every_web_id_route_is_covered(app: Flask) -> None:
    found = web_id_routes(app)
    assert found, "no web page takes an id"
    assert found == set(WEB_CASES), {"missing": found - set(WEB_CASES), "stale": set(WEB_CASES) - found}


def _web_url(rule: str, side: Side, case: dict[str, Any]) -> str:
    return (
        rule.replace("<alert_id>", side.alert_id)
        .replace("<pid>", side.patient_id)
        .replace("<team_id>", side.team_id)
        .replace("<action>", case.get("action", ""))
    )


def test_web_matrix_other_team_gets_the_missing_id_page_and_nothing_changes(
    app: Flask, world: dict[str, Side], db_sessionmaker: sessionmaker[Session]
) -> None:
    from tests.conftest import PASSWORD
    from tests.webui.helpers import CSRF, csrf_of, sign_in

    a, b = world["a"], world["b"]
    missing = Side(None, None, str(uuid.uuid4()), str(uuid.uuid4()), {}, str(uuid.uuid4()))
    attacker, anon, owner = app.test_client(), app.test_client(), app.test_client()
    clin2, clin1 = b.clinician, a.clinician
    sign_in(attacker, db_sessionmaker, email=clin2.email, password=PASSWORD, user_id=clin2.user_id)
    token = csrf_of(attacker.get("/patients").get_data(as_text=True))
    before = snapshot(db_sessionmaker)
    for (rule, method), case in sorted(WEB_CASES.items()):
        data = {"csrf_token": token, **case["form"]} if method == "POST" else None
        request_id = f"web-{uuid.uuid4().hex}"
        resp = attacker.open(
            _web_url(rule, a, case), method=method, data=data, headers={"X-Request-ID": request_id}
        )
        ghost = attacker.open(_web_url(rule, missing, case), method=method, data=data)
        assert resp.status_code == 404 and ghost.status_code == 404, rule
        # in the trail as denied, by her, without the other team's patient
        rows = _audit_of(db_sessionmaker, request_id)
        assert len(rows) == 1, (rule, rows)
        assert (rows[0].outcome, rows[0].actor_id, rows[0].patient_id) == ("denied", clin2.user_id, None), (
            rule
        )
        # the same page but for its CSRF token (signed with the time of the request)
        same = CSRF.sub("", resp.get_data(as_text=True)) == CSRF.sub("", ghost.get_data(as_text=True))
        assert same and resp.mimetype == "text/html", rule
        resp = anon.open(_web_url(rule, a, case), method=method, data=case.get("form"))
        assert resp.status_code in (302, 400), rule  # to sign-in, or the form refused (no CSRF token)
        if resp.status_code == 302:
            assert "/sign-in" in resp.headers["Location"], rule
    assert snapshot(db_sessionmaker) == before
    # the positive control: her own team's clinician reaches the same URLs
    sign_in(owner, db_sessionmaker, email=clin1.email, password=PASSWORD, user_id=clin1.user_id)
    token = csrf_of(owner.get("/patients").get_data(as_text=True))
    for (rule, method), case in sorted(WEB_CASES.items()):
        data = {"csrf_token": token, **case["form"]} if method == "POST" else None
        resp = owner.open(_web_url(rule, a, case), method=method, data=data)
        assert resp.status_code == case["owner"], (rule, resp.get_data(as_text=True)[:300])


# ---------------------------------------------------------------- refused first, and audited

BAD_BODY = {"timezone": "", "items": "x", "hours": "x", "name": "", "note": 5, "until": "never"}


def _attackers(b: Side) -> dict[str, Any]:
    return {"patient_b": b.patient, "clin2": b.clinician}


def test_matrix_refusal_comes_before_the_body(
    world: dict[str, Side], client: FlaskClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    """Someone else's id with a bad, absent or non-JSON body: still 404 (403 for a
    patient on a clinicians' operation), never a 400/422 describing the body."""
    a, b = world["a"], world["b"]
    before = snapshot(db_sessionmaker)
    checked = 0
    for (rule, method), case in sorted(CASES.items()):
        if method not in ("POST", "PATCH"):
            continue
        for role, actor in _attackers(b).items():
            expected = 403 if (case.clinician_only and role == "patient_b") else 404
            url = fill(rule, a, case)
            for kwargs in ({"json": BAD_BODY}, {}, {"data": "x", "content_type": "text/plain"}):
                resp = client.open(url, method=method, headers=actor.headers, **kwargs)
                assert_problem(resp, expected, f"{role} {method} {url} {kwargs}")
                checked += 1
    assert checked > 30
    assert snapshot(db_sessionmaker) == before


def _audit_of(db_sessionmaker: sessionmaker[Session], request_id: str) -> list[Any]:
    from backend.audit import AuditEvent

    with db_sessionmaker() as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)))
        session.expunge_all()
        return rows


def test_matrix_every_refusal_is_audited_as_denied_without_the_other_team(
    world: dict[str, Side], client: FlaskClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    """Each refused read or write of another team's patient, record, alert or
    team leaves one row: outcome denied, the attacker, the id asked for; no row
    names the other team's patient as touched."""
    a, b = world["a"], world["b"]
    attempts: list[tuple[str, str, Any, str]] = []
    for (rule, method), case in sorted(CASES.items()):
        for role, actor in _attackers(b).items():
            attempts.append((method, fill(rule, a, case), actor, role))
        if case.stream and "<record_id>" in rule:  # her own patient id, another patient's record
            for role, actor, pid in (("patient_b", b.patient, "me"), ("clin2", b.clinician, b.patient_id)):
                url = fill(rule, b, case, pid=pid, record_id=a.records[case.stream])
                attempts.append((method, url, actor, role))
    for method, url, actor, role in attempts:
        request_id = f"matrix-{uuid.uuid4().hex}"
        resp = client.open(url, method=method, headers={**actor.headers, "X-Request-ID": request_id})
        assert resp.status_code in (403, 404), (role, method, url)
        rows = _audit_of(db_sessionmaker, request_id)
        where = (role, method, url, [(r.action, r.outcome) for r in rows])
        assert len(rows) == 1, where
        [row] = rows
        assert row.outcome == "denied" and row.actor_id == actor.user_id, where
        assert row.patient_id is None, where
        if resp.status_code == 403:  # a patient on a clinicians' operation: which operation
            assert row.resource_type == "operation" and row.resource_id, where
        else:
            assert row.resource_id and row.resource_id in url, where
        assert a.patient.email not in str(row.detail)


def test_alert_list_filtered_on_another_teams_patient_is_denied_not_read(
    world: dict[str, Side], client: FlaskClient, db_sessionmaker: sessionmaker[Session]
) -> None:
    a, b = world["a"], world["b"]
    request_id = f"matrix-{uuid.uuid4().hex}"
    headers = {**b.clinician.headers, "X-Request-ID": request_id}
    resp = client.get(f"{PREFIX}/alerts?patient_id={a.patient_id}", headers=headers)
    assert resp.status_code == 200 and resp.get_json()["items"] == []
    [row] = _audit_of(db_sessionmaker, request_id)
    assert (row.action, row.outcome, row.actor_id) == ("alert.list", "denied", b.clinician.user_id)
    assert row.patient_id is None and row.resource_id == a.patient_id
    # Her own patient's filter is a read of that patient, as before.
    own = f"matrix-{uuid.uuid4().hex}"
    resp = client.get(
        f"{PREFIX}/alerts?patient_id={b.patient_id}", headers={**b.clinician.headers, "X-Request-ID": own}
    )
    items = resp.get_json()["items"]
    assert b.alert_id in [x["id"] for x in items] and {x["patient_id"] for x in items} == {b.patient_id}
    [row] = _audit_of(db_sessionmaker, own)
    assert (row.action, row.outcome, row.patient_id) == ("alert.list", "success", b.patient_id)
