"""The web layer shared by every blueprint: settings and the database session of
the request, and the mapping of every error to problem+json."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, g, json
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from backend.config import Settings
from backend.errors import PROBLEM_JSON, APIError

log = logging.getLogger(__name__)


def settings() -> Settings:
    value: Settings = current_app.extensions["lamtrack.settings"]
    return value


def sessionmaker_() -> sessionmaker[Session]:
    value: sessionmaker[Session] = current_app.extensions["lamtrack.sessionmaker"]
    return value


def db() -> Session:
    """The request's unit of work; committed by the route, closed at teardown."""
    if "db_session" not in g:
        g.db_session = sessionmaker_()()
    session: Session = g.db_session
    return session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()


class StrictParser(FlaskParser):
    """Unknown query parameters are an error too (a misspelt filter must not
    silently widen a list); headers and cookies stay open."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": "raise",
        "querystring": "raise",
    }


class Blueprint(SmorestBlueprint):  # type: ignore[misc]
    """flask-smorest's Blueprint with the strict argument parser."""

    ARGUMENTS_PARSER = StrictParser()


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    errors: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
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


def init_errors(app: Flask) -> None:
    """The one mapping of every error to RFC 9457 problem+json."""

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
        return problem(
            422,
            "Unprocessable Entity",
            "The request did not validate; see errors for each field.",
            errors=exc.normalized_messages(),  # type: ignore[no-untyped-call]
        )

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _db_down(exc: DBAPIError) -> Response:
        # Connection loss and lock timeouts: the client should retry later.
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            log.warning("database unavailable: %s", exc.__class__.__name__)
            return problem(
                503,
                "Service unavailable",
                "The database is not reachable right now; retry shortly.",
                headers={"Retry-After": "5"},
            )
        log.exception("database error")
        return problem(500, "Internal server error", "An unexpected error occurred.")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "Internal server error", "An unexpected error occurred.")
