from __future__ import annotations

from typing import Any

from flask.views import MethodView

from backend.auth import services
from backend.auth.permissions import current_principal
from backend.auth.schemas import LoginSchema, RefreshSchema, TokenPairSchema
from backend.db import utcnow
from backend.errors import APIError
from backend.limits import limiter, login_account_key
from backend.web import Blueprint, db, settings

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign-in and tokens")


def pair_out(pair: services.TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": pair.token_type,
        "expires_in": pair.expires_in,
    }


def commit_then_raise(func: Any, **kwargs: Any) -> services.TokenPair:
    """Run an auth service and commit, also when it refuses: the audit row of a
    refused attempt and the revocation of a reused token family must persist."""
    session = db()
    try:
        result: services.TokenPair = func(session, **kwargs)
    except APIError:
        session.commit()
        raise
    session.commit()
    return result


@blp.route("/login")
class Login(MethodView):
    decorators = [
        limiter.limit(lambda: settings().login_rate_limit),
        limiter.limit(lambda: settings().login_rate_limit, key_func=login_account_key),
    ]

    @blp.doc(security=[])
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, description="Wrong email or password (same answer for both)")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Sign in with email and password"""
        return pair_out(commit_then_raise(services.login, settings=settings(), now=utcnow(), **body))


@blp.route("/refresh")
class Refresh(MethodView):
    decorators = [limiter.limit(lambda: settings().login_rate_limit)]

    @blp.doc(security=[])
    @blp.arguments(RefreshSchema)
    @blp.response(200, TokenPairSchema)
    @blp.alt_response(401, description="Invalid, expired or reused refresh token")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Exchange a refresh token for a new pair (the old one stops working)"""
        return pair_out(
            commit_then_raise(
                services.refresh, settings=settings(), now=utcnow(), refresh_token=body["refresh_token"]
            )
        )


@blp.route("/logout")
class Logout(MethodView):
    @blp.arguments(RefreshSchema)
    @blp.response(204)
    @blp.alt_response(401, description="Not signed in, or not this user's token")
    def post(self, body: dict[str, Any]) -> None:
        """End this sign-in: the refresh token and all its successors stop working"""
        principal = current_principal()
        session = db()
        services.logout(
            session,
            settings=settings(),
            refresh_token=body["refresh_token"],
            user_id=principal.user_id,
            role=principal.role,
            now=utcnow(),
        )
        session.commit()
