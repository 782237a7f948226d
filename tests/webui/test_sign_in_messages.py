"""What the second-factor step says when it refuses: a code used already (within
its 30 s window), a spent recovery code, a wrong code, a form that arrives when no
sign-in is waiting for it."""

from __future__ import annotations

import time
from html import unescape
from typing import Any

from sqlalchemy import select

from backend.audit import AuditEvent
from tests.conftest import PASSWORD
from tests.webui.helpers import code_at, csrf_of, post_form, sign_in, totp_secret


def _code_step(app: Any, email: str, code: str) -> Any:
    """A fresh browser: the password, then `code` on the second-factor page."""
    other = app.test_client()
    post_form(other, "/sign-in", "/sign-in", {"email": email, "password": PASSWORD})
    page = other.get("/sign-in/code").get_data(as_text=True)
    return other.post("/sign-in/code", data={"csrf_token": csrf_of(page), "code": code})


def test_a_reused_code_says_to_wait_for_the_next_one(
    client: Any, app: Any, db_sessionmaker: Any, make_clinician: Any
) -> None:
    clin = make_clinician()
    done = sign_in(client, db_sessionmaker, email=clin.email, password=PASSWORD, user_id=clin.user_id)
    recovery = [c.split("</code>")[0] for c in done.get_data(as_text=True).split("<code>")[1:]]
    used = code_at(totp_secret(db_sessionmaker, clin.user_id))  # the code that enrolled, just now

    again = _code_step(app, clin.email, used)
    text = unescape(again.get_data(as_text=True))
    assert again.status_code == 401 and 'role="alert"' in text
    assert "This code was already used; wait for the next one" in text

    wrong = "000000" if used != "000000" else "111111"
    resp = _code_step(app, clin.email, wrong)
    assert resp.status_code == 401 and "That code is not right" in resp.get_data(as_text=True)

    assert _code_step(app, clin.email, recovery[0]).status_code == 302
    spent = _code_step(app, clin.email, recovery[0])
    assert spent.status_code == 401
    assert "This recovery code was already used" in spent.get_data(as_text=True)
    with db_sessionmaker() as s:
        details = s.scalars(
            select(AuditEvent.detail)
            .where(AuditEvent.action == "auth.second_factor", AuditEvent.actor_id == clin.user_id)
            .order_by(AuditEvent.at, AuditEvent.id)
        ).all()
    assert details == ["reused", None, "recovery_code", "recovery_code_used"]


def test_a_code_form_with_no_sign_in_waiting_says_so(
    client: Any, db_sessionmaker: Any, make_clinician: Any, monkeypatch: Any
) -> None:
    clin = make_clinician()
    sign_in(client, db_sessionmaker, email=clin.email, password=PASSWORD, user_id=clin.user_id)
    post_form(client, "/patients", "/sign-out", {})
    post_form(client, "/sign-in", "/sign-in", {"email": clin.email, "password": PASSWORD})
    token = csrf_of(client.get("/sign-in/code").get_data(as_text=True))
    real = time.time
    monkeypatch.setattr("backend.webui.signin.time.time", lambda: real() + 31 * 60)  # left open
    resp = client.post("/sign-in/code", data={"csrf_token": token, "code": "123456"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/sign-in")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "The sign-in timed out or was interrupted" in page
