"""The OpenAPI document, generated from the routes and schemas."""

from __future__ import annotations

import http
from typing import Any

import yaml
from flask_smorest import Api
from flask_smorest.spec import prepare_response

from backend.config import Settings
from backend.errors import PROBLEM_JSON
from backend.schemas import ProblemSchema


class ProblemApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with errors documented as application/problem+json,
    which is what the error handlers return."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def render_openapi() -> str:
    from backend import create_app

    # The document does not depend on the database; an in-memory one avoids touching files.
    app = create_app(Settings(database_url="sqlite://", jwt_keys={"doc": "x" * 32}))
    with app.app_context():
        document = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    rendered: str = yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)
    return rendered
