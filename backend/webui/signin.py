"""Who is signed in to the web pages: the signed session cookie, checked against
the account on every request (a deactivated account stops at once), with an
idle timeout. Two stages: `password` (second factor still to give) and `full`."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from backend.auth.models import User
from backend.auth.principal import Principal
from backend.web import db, settings

F = TypeVar("F", bound=Callable[..., Any])


def safe_next(value: str | None) -> str | None:
    """A return-to address only if it is a same-site relative path (no open redirect)."""
    if not value or len(value) > 2000:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return None
    return value


def start(user: User, stage: str) -> None:
    """A fresh session for `user` (nothing of the previous one is kept, but the return-to address)."""
    keep = session.get("next")
    session.clear()
    session["uid"] = user.id
    session["role"] = user.role
    session["stage"] = stage
    session["seen"] = int(time.time())
    if keep:
        session["next"] = keep


def pending_user() -> User | None:
    """The account that gave its password and still owes the second factor."""
    if session.get("stage") != "password" or _idle():
        return None
    user = db().get(User, session.get("uid", ""))
    return user if user is not None and user.is_active else None


def _idle() -> bool:
    seen = session.get("seen")
    return not isinstance(seen, int) or time.time() - seen > settings().web_idle_minutes * 60


def signed_in() -> Principal | None:
    if session.get("stage") != "full":
        return None
    if _idle():
        session.clear()
        return None
    user = db().get(User, session.get("uid", ""))
    if user is None or not user.is_active or user.role != "clinician" or user.role != session.get("role"):
        session.clear()
        return None
    session["seen"] = int(time.time())
    return Principal(user_id=user.id, role=user.role)


def to_sign_in() -> Response:
    path = request.full_path if request.query_string else request.path
    target = safe_next(path if request.method == "GET" else request.path)
    return redirect(url_for("webui.sign_in", next=target) if target else url_for("webui.sign_in"))


def clinician_page(view: F) -> F:
    """The view gets the signed-in clinician as `principal`; anyone else goes to sign-in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = signed_in()
        if principal is None:
            return to_sign_in()
        return view(*args, principal=principal, **kwargs)

    return wrapper  # type: ignore[return-value]
