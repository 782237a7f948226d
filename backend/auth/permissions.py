"""Who is signed in: the bearer token of the request, checked against the account.

Which patient that principal may reach is decided in one place,
`backend.patients.access`; each feature registers here how to check the ids of
its URLs (`resource_check`), so that every operation is authorised before its
body or query is parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import RefreshToken, TeamMembership, User
from backend.auth.principal import Principal
from backend.auth.tokens import ACCESS_TYP, decode_token
from backend.errors import APIError, Forbidden, Unauthorized
from backend.web import db, settings

F = TypeVar("F", bound=Callable[..., Any])
ResourceCheck = Callable[[Session, Principal, str], None]

# URL argument name -> the check that raises (403/404, audited) when the
# principal may not reach the object it names.
_RESOURCE_CHECKS: dict[str, ResourceCheck] = {}
_CLINICIANS_ONLY = "_lamtrack_clinicians_only"


def resource_check(arg_name: str) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register how to authorise the URL argument `arg_name` (e.g. `pid`)."""

    def register(check: ResourceCheck) -> ResourceCheck:
        _RESOURCE_CHECKS[arg_name] = check
        return check

    return register


def clinicians_only(func: F) -> F:
    """Mark an operation as for clinicians: anyone else gets 403 before the
    body or query is looked at (the view still calls `require_clinician`)."""
    setattr(func, _CLINICIANS_ONLY, True)
    return func


class BodyRequired(APIError):
    status = 400
    title = "Bad Request"


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


def _operation(app: Flask, endpoint: str) -> Any:
    view_class = getattr(app.view_functions.get(endpoint), "view_class", None)
    return getattr(view_class, request.method.lower(), None) if view_class is not None else None


def requires_json_body(operation: Any) -> bool:
    """True when the operation documents a required JSON request body."""
    doc = getattr(operation, "_apidoc", {})
    for parameter in doc.get("arguments", {}).get("parameters", []):
        if parameter.get("in") == "json" and parameter.get("required", True):
            return True
    return bool(doc.get("manual_doc", {}).get("requestBody", {}).get("required"))


def _has_json_body() -> bool:
    """A JSON body is sent (its content is judged when it is parsed); the body is
    not read here, so the size limit still answers 413 for a chunked one."""
    if not request.is_json:
        return False
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return True
    return bool(request.content_length)


def init_app(app: Flask) -> None:
    """Before anything else of the request is parsed: the token (401 whatever
    the body or query, not a 422 that says what the operation would accept),
    then who may call the operation (403 for clinicians' operations) and reach
    the objects its URL names (404, audited as denied), then whether the
    required JSON body is there at all (400, never an empty object)."""
    public = public_endpoints(app)

    @app.before_request
    def _authenticate() -> None:
        endpoint = request.endpoint
        if endpoint is None or request.method == "OPTIONS" or not request.path.startswith("/api/"):
            return
        operation = _operation(app, endpoint)
        if endpoint not in public:
            principal = current_principal()
            if getattr(operation, _CLINICIANS_ONLY, False) and not principal.is_clinician:
                record_audit(
                    db(),
                    actor_id=principal.user_id,
                    actor_role=principal.role,
                    action="operation.access",
                    outcome="denied",
                    resource_type="operation",
                    resource_id=endpoint[:64],
                )
                db().commit()
                require_clinician()
            for name, value in (request.view_args or {}).items():
                check = _RESOURCE_CHECKS.get(name)
                if check is not None:
                    check(db(), principal, str(value))
        if operation is not None and requires_json_body(operation) and not _has_json_body():
            raise BodyRequired("This operation takes a JSON body (Content-Type: application/json).")
