"""openapi.yaml is generated from the code: committed, valid, and in step."""

from __future__ import annotations

import json
from pathlib import Path

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
