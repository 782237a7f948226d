"""The OpenAPI document, generated from the routes and schemas.

Two things are set here for every operation rather than view by view:

- `operationId`, derived from the view's class and the method (`SpirometrySessionCollection`
  + POST -> `uploadSpirometrySessions`), with `OPERATION_IDS` naming the rest. Generated
  clients name their functions after it, so a rename is a breaking change.
- the error answers every operation can give besides those its view declares: 401
  without a valid token, 400 for a body that is not JSON, 413 for a body over the
  limit, 429 where a rate limit applies, 503 when the database is unreachable; each
  is application/problem+json (`ProblemSchema`)."""

from __future__ import annotations

import http
import re
from typing import Any

import yaml
from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.spec import prepare_response

from backend.config import Settings
from backend.errors import PROBLEM_JSON
from backend.schemas import ProblemSchema

# endpoint ("blueprint.View") and method -> operationId, where the derivation does
# not read well.
OPERATION_IDS: dict[tuple[str, str], str] = {
    ("health.Health", "get"): "getHealth",
    ("health.Ready", "get"): "getReadiness",
    ("health.SideEffectTerms", "get"): "listSideEffectTerms",
    ("auth.Login", "post"): "login",
    ("auth.Refresh", "post"): "refreshTokens",
    ("auth.Logout", "post"): "logout",
    ("registration.Register", "post"): "registerPatient",
    ("patients.Patients", "get"): "listPatients",
    ("patients.Patients", "post"): "createPatient",
    ("patients.PatientInvite", "post"): "createInvite",
    ("patients.RuleThresholds", "get"): "listRuleThresholds",
    ("streams.Changes", "get"): "listChanges",
    ("alerts.Alerts", "get"): "listAlerts",
    ("alerts.AlertAcknowledge", "post"): "acknowledgeAlert",
    ("alerts.AlertSnooze", "post"): "snoozeAlert",
    ("alerts.AlertResolve", "post"): "resolveAlert",
    ("alerts.PatientAlerts", "get"): "listPatientAlerts",
    ("reminders.PatientReminders", "get"): "listReminders",
}

# Operations that never touch the database, so never answer 503.
WITHOUT_DATABASE = {"health.Health", "health.SideEffectTerms"}
# Operations behind a rate limit (flask-limiter), which answer 429 with Retry-After.
RATE_LIMITED = {"auth.Login", "auth.Refresh", "registration.Register"}


def _links_to(operation_ids: list[str], **parameters: str) -> dict[str, Any]:
    return {
        op[0].upper() + op[1:]: {"operationId": op, "parameters": dict(parameters)} for op in operation_ids
    }


_ALERT_ACTIONS = ["getAlert", "acknowledgeAlert", "snoozeAlert", "resolveAlert"]
# OpenAPI links: how the answer of one operation names what the next one reads, so
# that clients (and the stateful fuzzing) can follow them.
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("patients.Patients", "post"): {
        "201": {
            **_links_to(
                ["getPatient", "updatePatient", "createInvite", "getTrend", "listPatientAlerts"],
                pid="$response.body#/id",
            ),
            **_links_to(["getTeam"], team_id="$response.body#/care_team_id"),
        }
    },
    ("patients.Patients", "get"): {"200": _links_to(["getPatient"], pid="$response.body#/items/0/id")},
    ("alerts.Alerts", "get"): {"200": _links_to(_ALERT_ACTIONS, alert_id="$response.body#/items/0/id")},
    ("alerts.PatientAlerts", "get"): {
        "200": _links_to(_ALERT_ACTIONS, alert_id="$response.body#/items/0/id")
    },
}

_VERBS = {"get": "get", "post": "create", "patch": "update", "put": "replace", "delete": "delete"}
_COLLECTION_VERBS = {"get": "list", "post": "upload"}


def derive_operation_id(endpoint: str, method: str) -> str:
    """`OPERATION_IDS`, else the view's class name with a verb: `XCollection` GET is
    `listXs` and POST `uploadXs` (a batch upload); `XItem`/`XDetail` and any other
    view take get/create/update/delete + X."""
    if (endpoint, method) in OPERATION_IDS:
        return OPERATION_IDS[(endpoint, method)]
    view = endpoint.rsplit(".", 1)[-1]
    if view.endswith("Collection") and method in _COLLECTION_VERBS:
        return _COLLECTION_VERBS[method] + view.removesuffix("Collection") + "s"
    name = re.sub(r"(Item|Detail)$", "", view)
    return _VERBS[method] + name


def _error(operation: dict[str, Any], status: int, description: str | None = None) -> None:
    responses = operation.setdefault("responses", {})
    if str(status) in responses or status in responses:
        return
    if description is None:
        responses[str(status)] = http.HTTPStatus(status).name
    else:
        responses[str(status)] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": "Problem"}},
        }


class ContractPlugin(BasePlugin):
    """operationId and the common error answers of every operation."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        endpoint: str = rule.endpoint
        for method, operation in operations.items():
            if method not in _VERBS:
                continue
            operation.setdefault("operationId", derive_operation_id(endpoint, method))
            self._links(operation, endpoint, method)
            if operation.get("security") != []:
                _error(operation, 401, "Missing, invalid or expired access token")
            if "requestBody" in operation:
                _error(operation, 400, "The body is not valid JSON")
                _error(operation, 413, "The body is larger than the server accepts")
            if endpoint in RATE_LIMITED:
                _error(operation, 429, "Too many attempts; retry after the Retry-After header's seconds")
                operation["responses"]["429"]["headers"] = {
                    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}
                }
            if endpoint not in WITHOUT_DATABASE:
                _error(operation, 503, "The database is not reachable right now; retry shortly")
            # A view's own `alt_response(status, description=...)` names no body; every
            # error body is a problem.
            for status, response in operation["responses"].items():
                if str(status).isdigit() and int(status) >= 400 and isinstance(response, dict):
                    response.setdefault("content", {PROBLEM_JSON: {"schema": "Problem"}})

    @staticmethod
    def _links(operation: dict[str, Any], endpoint: str, method: str) -> None:
        links = dict(LINKS.get((endpoint, method), {}))
        if endpoint.endswith("Collection") and method == "post":
            # A stream's upload answers the id of each stored record, in order.
            item = endpoint.removesuffix("Collection") + "Item"
            links["200"] = _links_to(
                [derive_operation_id(item, "get"), derive_operation_id(item, "delete")],
                pid="$request.path.pid",
                record_id="$response.body#/results/0/id",
            )
        if endpoint.endswith("Collection") and method == "get":
            item = endpoint.removesuffix("Collection") + "Item"
            links["200"] = _links_to(
                [derive_operation_id(item, "get"), derive_operation_id(item, "delete")],
                pid="$request.path.pid",
                record_id="$response.body#/items/0/id",
            )
        responses = operation["responses"]
        for status, status_links in links.items():
            key = int(status) if int(status) in responses else status
            responses[key]["links"] = status_links


class ProblemApi(Api):  # type: ignore[misc]
    """flask-smorest's Api with errors documented as application/problem+json,
    which is what the error handlers return."""

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *args: Any, **kwargs: Any) -> None:
        kwargs["extra_plugins"] = (*(kwargs.get("extra_plugins") or ()), ContractPlugin())
        super()._init_spec(*args, **kwargs)

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
