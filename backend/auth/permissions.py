"""Who is signed in: the bearer token of the request, checked against the account.

Which patient that principal may reach is decided in one place,
`backend.patients.access`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth.models import RefreshToken, TeamMembership, User
from backend.auth.principal import Principal
from backend.auth.tokens import ACCESS_TYP, decode_token
from backend.errors import Forbidden, Unauthorized
from backend.web import db, settings

F = TypeVar("F", bound=Callable[..., Any])


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    if principal is None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("A bearer access token is required.", headers={"WWW-Authenticate": "Bearer"})
        claims = decode_token(settings(), token.strip(), expected_typ=ACCESS_TYP)
        # Looked up on every request, so that a deactivated account stops at once
        # (two columns, not the whole account).
        user = db().execute(select(User.role, User.is_active).where(User.id == claims.subject)).one_or_none()
        if user is None or not user.is_active or user.role != claims.role:
            raise Unauthorized("The token is not valid.", headers={"WWW-Authenticate": "Bearer"})
        if claims.family_id is not None and family_revoked(db(), claims.family_id):
            raise Unauthorized("The token is not valid.", headers={"WWW-Authenticate": "Bearer"})
        principal = Principal(user_id=claims.subject, role=user.role)
        g.principal = principal
    return principal


def family_revoked(session: Session, family_id: str) -> bool:
    """True once the login's token family was ended (logout, refresh reuse)."""
    stmt = select(RefreshToken.jti).where(
        RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None)
    )
    return session.scalars(stmt.limit(1)).first() is not None


def require_clinician() -> Principal:
    principal = current_principal()
    if not principal.is_clinician:
        raise Forbidden("This operation is for clinicians.")
    return principal


def clinician_team_ids(session: Session, user_id: str) -> list[str]:
    return list(session.scalars(select(TeamMembership.team_id).where(TeamMembership.user_id == user_id)))


def public_endpoints(app: Flask) -> set[str]:
    """Endpoints whose every method is documented `security: []` (sign-in, health)."""
    public = set()
    for endpoint, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)
        if view_class is None:
            continue
        methods = [getattr(view_class, m.lower(), None) for m in view_class.methods or ()]
        docs = [getattr(fn, "_apidoc", {}).get("manual_doc", {}) for fn in methods if fn is not None]
        if docs and all(doc.get("security") == [] for doc in docs):
            public.add(endpoint)
    return public


def init_app(app: Flask) -> None:
    """Check the token before anything else of the request, so that a caller
    without one gets 401 whatever the body or query (not a 422 that says what
    the operation would accept)."""
    public = public_endpoints(app)

    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint
        if endpoint is None or endpoint in public or request.method == "OPTIONS":
            return
        if not request.path.startswith("/api/"):
            return
        current_principal()
