"""Domain errors. `backend.web` maps each to RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class APIError(Exception):
    """A client-visible error. Subclasses fix the status and title."""

    status = 400
    title = "Bad request"
    type_ = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Any = None,
        headers: dict[str, str] | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.rule = rule  # the name of the rule that refused the request, when one did


class Unauthorized(APIError):
    status = 401
    title = "Unauthorized"


class Forbidden(APIError):
    status = 403
    title = "Forbidden"


class NotFound(APIError):
    status = 404
    title = "Not found"


class Conflict(APIError):
    status = 409
    title = "Conflict"


class Unprocessable(APIError):
    status = 422
    title = "Unprocessable content"


class ServiceUnavailable(APIError):
    status = 503
    title = "Service unavailable"
