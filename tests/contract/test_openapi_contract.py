"""openapi.yaml is generated from the code: committed, valid, and in step."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from openapi_spec_validator import validate

from backend.config import REPO_ROOT
from backend.openapi import render_openapi


def test_committed_spec_matches_the_code() -> None:
    committed = (REPO_ROOT / "openapi.yaml").read_text()
    assert committed == render_openapi(), "openapi.yaml is stale: run `lamtrack export-openapi` and commit it"


def test_spec_is_valid_openapi() -> None:
    validate(yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text()))


def test_routes_and_spec_paths_are_the_same_set(app: Flask) -> None:
    spec_paths = set(yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())["paths"])
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint.split(".")[0] != "api-docs":
            routes.add(rule.rule.replace("<", "{").replace(">", "}"))
    assert routes == spec_paths


def test_example_payloads_validate_against_their_schemas() -> None:
    """Every file in api_spec/examples names the schema it is an example of."""
    from openapi_schema_validator import OAS30Validator
    from openapi_schema_validator import validate as validate_instance

    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    examples = sorted(Path(REPO_ROOT / "api_spec" / "examples").glob("*.json"))
    assert examples, "api_spec/examples holds no examples"
    for path in examples:
        doc = json.loads(path.read_text())
        schema = {"$ref": doc["schema"], "components": spec["components"]}
        validate_instance(doc["example"], schema, cls=OAS30Validator)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_operation_has_a_unique_readable_operation_id() -> None:
    ids = [operation.get("operationId") for _, _, operation in _operations()]
    assert all(ids), "an operation has no operationId"
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", i) for i in ids), ids
    by_key = {(m, p): o["operationId"] for m, p, o in _operations()}
    assert by_key[("POST", "/api/v1/patients/{pid}/spirometry")] == "uploadSpirometrySessions"
    assert by_key[("GET", "/api/v1/alerts")] == "listAlerts"
    assert by_key[("POST", "/api/v1/alerts/{alert_id}/acknowledge")] == "acknowledgeAlert"


def _resolve(spec: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in response:
        resolved: dict[str, Any] = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        return resolved
    return response


def test_every_error_answer_is_a_documented_problem() -> None:
    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    for method, path, operation in _operations():
        responses = operation["responses"]
        secured = operation.get("security") != []
        if secured:
            assert "401" in responses, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(responses), (method, path)
        if "/{" in path:
            assert "404" in responses, (method, path)
        for status, response in responses.items():
            if status == "default" or int(status) >= 400:
                content = _resolve(spec, response)["content"]
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }, (method, path, status)


def test_rate_limited_operations_document_429(app: Flask) -> None:
    """Every view wrapped by the rate limiter documents 429, and no other does."""
    from flask_limiter.util import get_qualified_name

    from backend.limits import limiter

    limited = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        # flask-limiter keeps the views it decorated by qualified name.
        if get_qualified_name(app.view_functions[rule.endpoint]) in limiter._marked_for_limiting:
            methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
            limited |= {(m, rule.rule.replace("<", "{").replace(">", "}")) for m in methods}
    documented = {(m, p) for m, p, o in _operations() if "429" in o["responses"]}
    assert limited == documented


def test_register_documents_the_password_rule_it_enforces(client: Any) -> None:
    from backend.auth.passwords import MIN_PASSWORD_LENGTH

    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    password = spec["components"]["schemas"]["Register"]["properties"]["password"]
    assert password["minLength"] == MIN_PASSWORD_LENGTH
    short = client.post(
        "/api/v1/auth/register",
        json={"invite_code": "x", "email": "a@example.org", "password": "p" * (MIN_PASSWORD_LENGTH - 1)},
    )
    assert short.status_code == 422
    assert "password" in short.get_json()["errors"]["json"]


def test_links_name_operations_and_parameters_that_exist() -> None:
    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    by_id = {o["operationId"]: (p, o) for _, p, o in _operations()}
    count = 0
    for method, path, operation in _operations():
        for status, response in operation["responses"].items():
            for name, link in (response.get("links") or {}).items():
                target_path, target = by_id[link["operationId"]]
                params = {p["name"] for p in spec["paths"][target_path].get("parameters", [])}
                params |= {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= params, (method, path, status, name)
                count += 1
    assert count >= 20


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_an_alert_action_without_a_body_is_documented_as_accepted(
    action: str, make_clinician: Any, make_patient: Any, db_sessionmaker: Any
) -> None:
    from tests.contract.test_fuzz_schemathesis import seed_alert

    clinician = make_clinician()
    patient = make_patient(clinician)
    alert_id = seed_alert(db_sessionmaker, patient.patient_id, clinician.team_ids[0])
    resp = clinician.client.post(f"/api/v1/alerts/{alert_id}/{action}", headers=clinician.headers)
    assert resp.status_code == 200, resp.get_json()
    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    assert spec["paths"][f"/api/v1/alerts/{{alert_id}}/{action}"]["post"]["requestBody"]["required"] is False
