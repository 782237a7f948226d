"""Rate limits (flask-limiter). One process keeps counters in memory; several
workers share them through Redis (`RATE_LIMIT_STORAGE_URL=redis://...`)."""

from __future__ import annotations

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


def login_account_key() -> str:
    """Throttle per account as well as per address, so that a password guesser
    spreading over addresses still meets a limit. Unknown emails are throttled
    the same way, so the limit says nothing about which accounts exist."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"account:{str(email).strip().lower()[:320]}" if email else get_remote_address()


def init_app(app: Flask, storage_url: str) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = storage_url
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True  # a Redis outage must not stop sign-in
    limiter.init_app(app)
