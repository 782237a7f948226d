"""The care team's web pages through the Flask test client: sign-in with the
second factor, the alert page and its actions, the triage list and the patient
page, who may see what, and that the JSON API is untouched."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from backend.alerts.emails import alert_link
from backend.alerts.models import Alert, AlertEvent
from backend.audit import AuditEvent
from backend.auth.models import RecoveryCode, User
from backend.db import session_scope, utcnow
from backend.triage.models import PatientReview
from tests.conftest import PASSWORD
from tests.contract.test_authorization_matrix import _add_alert
from tests.factories import ingest
from tests.webui.helpers import CSRF, code_at, csrf_of, post_form, sign_in, totp_secret


@pytest.fixture
def team_a(make_clinician: Any, make_patient: Any, db_sessionmaker: Any) -> dict[str, Any]:
    clin = make_clinician()
    pat = make_patient(clin)
    alert_id = _add_alert(db_sessionmaker, pat.patient_id, clin.team_ids[0])
    return {"clin": clin, "patient": pat, "alert_id": alert_id}


def _signed_in(client: Any, db_sessionmaker: Any, clin: Any) -> Any:
    return sign_in(client, db_sessionmaker, email=clin.email, password=PASSWORD, user_id=clin.user_id)


def test_email_link_is_the_alert_page(settings: Any) -> None:
    assert alert_link(settings, "abc") == f"{settings.public_base_url}/alerts/abc"


def test_alert_link_signs_in_with_enrolment_and_lands_on_the_alert(
    client: Any, db_sessionmaker: Any, team_a: dict[str, Any]
) -> None:
    clin, alert_id = team_a["clin"], team_a["alert_id"]
    resp = client.get(f"/alerts/{alert_id}")
    assert resp.status_code == 302 and f"/sign-in?next=/alerts/{alert_id}" in resp.headers["Location"]
    client.get(resp.headers["Location"])
    done = sign_in(client, db_sessionmaker, email=clin.email, password=PASSWORD, user_id=clin.user_id)
    page = done.get_data(as_text=True)
    assert done.status_code == 200 and "recovery codes" in page.lower()
    assert f'href="/alerts/{alert_id}"' in page
    with db_sessionmaker() as s:
        assert s.scalar(select(RecoveryCode).where(RecoveryCode.user_id == clin.user_id).limit(1)) is not None
        hashes = {
            r.code_hash for r in s.scalars(select(RecoveryCode).where(RecoveryCode.user_id == clin.user_id))
        }
    shown = page.split("<code>")[1:]
    assert len(shown) == 10 and not any(c.split("</code>")[0] in hashes for c in shown)
    alert_page = client.get(f"/alerts/{alert_id}")
    text = alert_page.get_data(as_text=True)
    assert alert_page.status_code == 200 and "Acute FEV1 drop" in text and "FEV1 fell." in text
    assert '<th scope="row">Drop</th><td>12 %</td>' in text
    csp = alert_page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    cookie = alert_page.headers.get("Set-Cookie", "") or done.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    with db_sessionmaker() as s:
        reads = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "alert.read", AuditEvent.resource_id == alert_id)
        ).all()
        assert [(r.actor_id, r.detail) for r in reads] == [(clin.user_id, "web")]


def test_second_factor_refuses_a_replayed_code_and_takes_a_recovery_code_once(
    client: Any, app: Any, db_sessionmaker: Any, team_a: dict[str, Any]
) -> None:
    clin = team_a["clin"]
    done = _signed_in(client, db_sessionmaker, clin)
    codes = [c.split("</code>")[0] for c in done.get_data(as_text=True).split("<code>")[1:]]
    secret = totp_secret(db_sessionmaker, clin.user_id)
    enrol_code = code_at(secret)
    wrong = "000000" if enrol_code != "000000" else "111111"
    # the enrolment code again (replayed), a wrong code, a recovery code, the same one again
    for attempt, expected in ((enrol_code, 401), (wrong, 401), (codes[0], 302), (codes[0], 401)):
        other = app.test_client()
        post_form(other, "/sign-in", "/sign-in", {"email": clin.email, "password": PASSWORD})
        page = other.get("/sign-in/code").get_data(as_text=True)
        resp = other.post("/sign-in/code", data={"csrf_token": csrf_of(page), "code": attempt})
        assert resp.status_code == expected, attempt
        assert other.get("/patients").status_code == (200 if expected == 302 else 302)


def test_wrong_password_and_patient_accounts(client: Any, team_a: dict[str, Any]) -> None:
    resp = post_form(client, "/sign-in", "/sign-in", {"email": team_a["clin"].email, "password": "wrong" * 4})
    assert resp.status_code == 401 and "not correct" in resp.get_data(as_text=True)
    resp = post_form(client, "/sign-in", "/sign-in", {"email": team_a["patient"].email, "password": PASSWORD})
    assert resp.status_code == 200 and "for your care team" in resp.get_data(as_text=True).lower()
    assert client.get("/patients").status_code == 302


@pytest.mark.parametrize("email", ["a\x00b@example.org", "\x00"])
def test_a_nul_in_the_sign_in_email_is_a_wrong_password(client: Any, email: str) -> None:
    # PostgreSQL cannot compare text holding a NUL: the form must not reach it with one
    resp = post_form(client, "/sign-in", "/sign-in", {"email": email, "password": PASSWORD})
    assert resp.status_code == 401 and "not correct" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"]
)
def test_return_to_is_only_a_same_site_path(
    client: Any, db_sessionmaker: Any, team_a: dict[str, Any], target: str
) -> None:
    clin = team_a["clin"]
    client.get("/sign-in", query_string={"next": target})
    _signed_in(client, db_sessionmaker, clin)
    resp = client.get("/sign-in")
    assert resp.status_code == 302 and resp.headers["Location"] == "/patients"


def test_forms_need_the_csrf_token_and_acknowledge_with_a_note(
    client: Any, db_sessionmaker: Any, team_a: dict[str, Any]
) -> None:
    clin, alert_id = team_a["clin"], team_a["alert_id"]
    _signed_in(client, db_sessionmaker, clin)
    refused = client.post(f"/alerts/{alert_id}/acknowledge", data={"note": "on it"})
    assert refused.status_code == 400
    with db_sessionmaker() as s:
        assert s.get(Alert, alert_id).status == "open"  # type: ignore[union-attr]
    resp = post_form(
        client, f"/alerts/{alert_id}", f"/alerts/{alert_id}/acknowledge", {"note": "calling her"}
    )
    assert resp.status_code == 302
    page = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    assert "Acknowledged." in page and "calling her" in page
    resp = post_form(client, f"/alerts/{alert_id}", f"/alerts/{alert_id}/snooze", {"hours": "0"})
    assert "between 1 hour" in client.get(resp.headers["Location"]).get_data(as_text=True)
    post_form(client, f"/alerts/{alert_id}", f"/alerts/{alert_id}/resolve", {"note": "seen in clinic"})
    with db_sessionmaker() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None and alert.status == "resolved" and alert.resolved_by == clin.user_id
        notes = [e.note for e in s.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id))]
        assert "calling her" in notes and "seen in clinic" in notes


def test_a_note_with_a_nul_changes_nothing_and_says_why(
    client: Any, db_sessionmaker: Any, team_a: dict[str, Any]
) -> None:
    clin, alert_id = team_a["clin"], team_a["alert_id"]
    _signed_in(client, db_sessionmaker, clin)
    resp = post_form(
        client, f"/alerts/{alert_id}", f"/alerts/{alert_id}/acknowledge", {"note": "call\x00ing"}
    )
    assert resp.status_code == 302
    assert "cannot be stored" in client.get(resp.headers["Location"]).get_data(as_text=True)
    with db_sessionmaker() as s:
        assert s.get(Alert, alert_id).status == "open"  # type: ignore[union-attr]


def test_another_teams_ids_get_the_same_404_page_as_missing_ids(
    client: Any, db_sessionmaker: Any, make_clinician: Any, team_a: dict[str, Any]
) -> None:
    other = make_clinician()
    _signed_in(client, db_sessionmaker, other)
    missing = str(uuid.uuid4())
    pages = {}
    for url in (
        f"/alerts/{team_a['alert_id']}",
        f"/alerts/{missing}",
        f"/patients/{team_a['patient'].patient_id}",
        f"/patients/{missing}",
    ):
        resp = client.get(url)
        assert resp.status_code == 404, url
        # the same page but for its CSRF token (signed with the time of the request)
        pages[url] = CSRF.sub("", resp.get_data(as_text=True))
    assert len(set(pages.values())) == 1
    for url in (
        f"/alerts/{team_a['alert_id']}/acknowledge",
        f"/patients/{team_a['patient'].patient_id}/reviewed",
    ):
        resp = post_form(client, "/patients", url, {"note": "x"})
        assert resp.status_code == 404
    with db_sessionmaker() as s:
        assert s.get(Alert, team_a["alert_id"]).status == "open"  # type: ignore[union-attr]
        assert s.scalars(select(PatientReview)).first() is None


def test_api_keeps_bearer_tokens_only(client: Any, db_sessionmaker: Any, team_a: dict[str, Any]) -> None:
    _signed_in(client, db_sessionmaker, team_a["clin"])
    assert client.get("/patients").status_code == 200
    resp = client.get(f"/api/v1/alerts/{team_a['alert_id']}")
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    ok = team_a["clin"].post(f"/api/v1/alerts/{team_a['alert_id']}/acknowledge", json={"note": "api"})
    assert ok.status_code == 200  # no CSRF token needed by the JSON API


def test_idle_timeout_and_sign_out(
    client: Any, db_sessionmaker: Any, team_a: dict[str, Any], monkeypatch: Any
) -> None:
    _signed_in(client, db_sessionmaker, team_a["clin"])
    assert client.get("/patients").status_code == 200
    real = time.time
    monkeypatch.setattr("backend.webui.signin.time.time", lambda: real() + 31 * 60)
    resp = client.get("/patients")
    assert resp.status_code == 302 and "/sign-in" in resp.headers["Location"]
    monkeypatch.undo()
    _signed_in(client, db_sessionmaker, team_a["clin"])
    resp = post_form(client, "/patients", "/sign-out", {})
    assert resp.status_code == 302 and client.get("/patients").status_code == 302


def test_triage_list_and_patient_page(
    client: Any, app: Any, db_sessionmaker: Any, team_a: dict[str, Any], settings: Any
) -> None:
    from backend.patients.models import Patient

    now = utcnow()
    with session_scope(db_sessionmaker) as s:
        patient = s.get(Patient, team_a["patient"].patient_id)
        assert patient is not None
        items = [
            {"measured_at": (now - timedelta(days=d)).isoformat(), "fev1_l": 2.4 - d * 0.0005, "fvc_l": 3.2}
            for d in range(200, 0, -1)
        ]
        items.append(
            {
                "measured_at": (now - timedelta(days=30)).isoformat(),
                "fev1_l": 2.3,
                "fvc_l": 3.1,
                "setting": "clinic",
            }
        )
        ingest(s, patient=patient, stream="spirometry", items=items, now=now, settings=settings)
        ingest(
            s,
            patient=patient,
            stream="regimens",
            now=now,
            settings=settings,
            items=[
                {
                    "effective_at": (now - timedelta(days=100)).isoformat(),
                    "kind": "start",
                    "daily_dose_mg": 2.0,
                }
            ],
        )
        ingest(
            s,
            patient=patient,
            stream="troughs",
            now=now,
            settings=settings,
            items=[{"drawn_at": (now - timedelta(days=80)).isoformat(), "value_ng_ml": 6.5}],
        )
        ingest(
            s,
            patient=patient,
            stream="side-effects",
            now=now,
            settings=settings,
            items=[
                {
                    "onset_at": (now - timedelta(days=20)).isoformat(),
                    "term": "mucositis_oral",
                    "severity": "mild",
                }
            ],
        )
    _signed_in(client, db_sessionmaker, team_a["clin"])
    listing = client.get("/patients").get_data(as_text=True)
    assert "1 review" in listing and "2.30 L" not in listing and "patient-row" in listing
    pid = team_a["patient"].patient_id
    post_form(client, "/patients", f"/patients/{pid}/reviewed", {"next": "/patients"})
    with db_sessionmaker() as s:
        assert s.scalars(select(PatientReview.reviewer_id)).all() == [team_a["clin"].user_id]
    assert (
        "—"
        not in client.get("/patients")
        .get_data(as_text=True)
        .split("patient-row")[1]
        .split("</tr>")[0]
        .split("<td>")[-2]
    )
    resp = client.get(f"/patients/{pid}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    for marker in (
        'class="chart fev1-chart"',
        'class="home"',
        'class="clinic"',
        'class="pct70"',
        'class="lln"',
        'class="regimen"',
        "trend trend-",
        'class="chart trough-chart"',
        'class="target"',
        "Mouth sores (oral mucositis) (mild)",
        "Trough schedule",
        "Data quality",
    ):
        assert marker in html, marker
    with db_sessionmaker() as s:
        assert s.scalars(
            select(AuditEvent.actor_id).where(
                AuditEvent.action == "patient.read", AuditEvent.patient_id == pid, AuditEvent.detail == "web"
            )
        ).all() == [team_a["clin"].user_id]


def test_cli_create_clinician_can_enrol_the_second_factor(
    settings: Any, db_sessionmaker: Any, monkeypatch: Any
) -> None:
    from backend.cli import main
    from backend.patients.accounts import create_team

    with session_scope(db_sessionmaker) as s:
        team_id = create_team(s, name="CLI team").id
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LAMTRACK_PASSWORD", PASSWORD)
    result = CliRunner().invoke(
        main, ["create-clinician", "--team", team_id, "--email", "cli@example.org", "--enrol-totp"]
    )
    assert result.exit_code == 0, result.output
    uri = next(
        line.split(": ", 1)[1] for line in result.output.splitlines() if line.startswith("otpauth URI")
    )
    with db_sessionmaker() as s:
        user = s.scalars(select(User).where(User.email == "cli@example.org")).one()
        assert user.totp_enrolled_at is not None
        assert pyotp.parse_uri(uri).secret == user.totp_secret
