"""Domain errors and the one mapping of every error to RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class APIError(Exception):
    """A client-visible error. Subclasses fix the status and title."""

    status = 400
    title = "Bad request"
    type_ = "about:blank"

    def __init__(self, detail: str | None = None, *, errors: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


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


def problem(status: int, title: str, detail: str | None = None, *, errors: Any = None,
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    request_id = g.get("request_id") if g else None
    if request_id:
        body["request_id"] = request_id
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def init_app(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        errors = None
        detail = exc.description
        # flask-smorest / webargs put marshmallow messages here on 422.
        data = getattr(exc, "data", None)
        if isinstance(data, dict) and "messages" in data:
            errors = data["messages"]
            detail = "The request did not validate; see errors for each field."
        if status == 413:
            detail = "The request body is larger than the server accepts."
        headers = {}
        if status == 429:
            retry_after = getattr(exc, "retry_after", None)
            headers["Retry-After"] = str(retry_after or 60)
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        title = exc.name or "Error"
        return problem(status, title, detail, errors=errors, headers=headers)

    @app.errorhandler(ValidationError)
    def _validation_error(exc: ValidationError) -> Response:
        # Raised inside a view after argument parsing, e.g. by an undecodable cursor.
        return problem(422, "Unprocessable Entity",
                       "The request did not validate; see errors for each field.",
                       errors=exc.normalized_messages())  # type: ignore[no-untyped-call]

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _db_down(exc: DBAPIError) -> Response:
        # Connection loss and lock timeouts: the client should retry later.
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            log.warning("database unavailable: %s", exc.__class__.__name__)
            return problem(503, "Service unavailable",
                           "The database is not reachable right now; retry shortly.",
                           headers={"Retry-After": "5"})
        log.exception("database error")
        return problem(500, "Internal server error", "An unexpected error occurred.")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "Internal server error", "An unexpected error occurred.")
