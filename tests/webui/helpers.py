"""Signing in to the web pages through the real forms (password, then TOTP)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pyotp
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from backend.auth.models import User

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def post_form(client: FlaskClient, page_url: str, action_url: str, data: dict[str, Any]) -> Any:
    token = csrf_of(client.get(page_url).get_data(as_text=True))
    return client.post(action_url, data={"csrf_token": token, **data})


def totp_secret(db_sessionmaker: sessionmaker[Session], user_id: str) -> str:
    with db_sessionmaker() as s:
        user = s.get(User, user_id)
        assert user is not None and user.totp_secret
        return user.totp_secret


def code_at(secret: str, offset_steps: int = 0) -> str:
    now = datetime.now(UTC).timestamp() + 30 * offset_steps
    return pyotp.TOTP(secret).at(now)


def sign_in(
    client: FlaskClient,
    db_sessionmaker: sessionmaker[Session],
    *,
    email: str,
    password: str,
    user_id: str,
    next_url: str | None = None,
) -> Any:
    """Password, then the second factor (enrolling at the first sign-in).
    Returns the last response (the recovery codes page, or the redirect)."""
    page = "/sign-in" + (f"?next={next_url}" if next_url else "")
    resp = post_form(client, page, "/sign-in", {"email": email, "password": password})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    if resp.headers["Location"].endswith("/sign-in/enrol"):
        page = client.get("/sign-in/enrol").get_data(as_text=True)
        secret = totp_secret(db_sessionmaker, user_id)
        assert secret in page
        return client.post("/sign-in/enrol", data={"csrf_token": csrf_of(page), "code": code_at(secret)})
    page = client.get("/sign-in/code").get_data(as_text=True)
    secret = totp_secret(db_sessionmaker, user_id)
    return client.post("/sign-in/code", data={"csrf_token": csrf_of(page), "code": code_at(secret, 1)})
