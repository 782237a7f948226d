"""The web layer shared by every blueprint: settings and the database session of
the request, and the mapping of every error to problem+json."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from flask import Flask, Response, current_app, g, json, request
from flask.json.provider import DefaultJSONProvider
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


# Nesting deeper than this is refused before the body is parsed: no request of
# the API nests more than a few levels, and Python's parser would otherwise
# exhaust its recursion limit on 50,000 open brackets.
MAX_JSON_DEPTH = 32
_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def _too_deep(text: str) -> bool:
    depth = 0
    for match in _JSON_BRACKETS.finditer(_JSON_STRINGS.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """JSON as RFC 8259 has it, both ways: what the API answers never holds
    NaN or Infinity (they become null), and a body nested deeper than
    MAX_JSON_DEPTH is refused as malformed (400) before it is parsed."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(_finite(obj), **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        text = s.decode("utf-8") if isinstance(s, bytes) else s
        if _too_deep(text):
            raise ValueError(f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
        return super().loads(text, **kwargs)


# A longer request target is refused (414) before routing: gunicorn refuses a
# request line over 4094 bytes the same way (backend/serving.py), and no
# operation of the API takes a URL anywhere near this long.
MAX_URL_BYTES = 4096


def _guard_url() -> Response | None:
    """What no route can take, refused before anything else: a URL longer than
    MAX_URL_BYTES (414) and a NUL character in it (no database stores one)."""
    target = request.environ.get("RAW_URI") or request.full_path
    if len(target.encode("utf-8", "surrogateescape")) > MAX_URL_BYTES:
        return problem(
            414, "URI Too Long", f"The URL is longer than the server accepts ({MAX_URL_BYTES} bytes)."
        )
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        return problem(400, "Bad Request", "The URL holds a NUL character.")
    return None


def guard_body() -> Response | None:
    """A JSON body nested deeper than MAX_JSON_DEPTH, refused before it is parsed
    (webargs parses bodies with the standard parser, which would recurse).
    Registered after authentication (`backend.auth.permissions`): a caller
    without a token learns nothing from the body."""
    if request.is_json and _too_deep(request.get_data(cache=True).decode("utf-8", "replace")):
        return problem(400, "Bad Request", f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.")
    return None


def init_app(app: Flask) -> None:
    app.json = StrictJSONProvider(app)
    app.before_request(_guard_url)

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
    rule: str | None = None,
) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if rule:
        body["rule"] = rule
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
        return problem(
            exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers, rule=exc.rule
        )

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
