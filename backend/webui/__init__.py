"""The care team's web pages: server-rendered Jinja on the same Flask app.

Signed in with a session cookie (email, password, then a TOTP second factor);
the JSON API under /api/v1 keeps bearer tokens only and is not touched by any
of this (no CSRF check, no cookie is read there).
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Response, request
from flask_wtf.csrf import CSRFProtect

from backend.config import Settings

csrf = CSRFProtect()

# No inline script or style anywhere on the web pages: everything comes from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _secret_key(settings: Settings) -> str:
    """The cookie-signing key, derived from the token signing key (one secret to manage)."""
    signing = next(iter(settings.jwt_keys.values()), "") if settings.jwt_keys else ""
    return hmac.new(signing.encode(), b"lamtrack web session", hashlib.sha256).hexdigest()


def cookie_secure(settings: Settings) -> bool:
    choice = settings.web_cookie_secure.strip().lower()
    if choice == "auto":
        return settings.public_base_url.lower().startswith("https://")
    return choice in ("1", "true", "yes", "on")


def init_app(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SESSION_COOKIE_NAME="lamtrack_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cookie_secure(settings),
        # The web pages check their forms themselves (routes.before_request);
        # the JSON API is never checked: it takes no cookie.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which the idle timeout ends
        WTF_CSRF_SSL_STRICT=True,
    )
    csrf.init_app(app)
    from backend.webui import report_page  # noqa: F401 (its pages join the blueprint)
    from backend.webui.routes import blp

    app.register_blueprint(blp)

    @app.after_request
    def _page_headers(resp: Response) -> Response:
        if request.blueprint == blp.name or request.path.startswith("/assets/"):
            resp.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            resp.headers["X-Frame-Options"] = "DENY"
            resp.headers["Referrer-Policy"] = "same-origin"
        return resp
