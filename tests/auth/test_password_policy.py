"""New passwords follow NIST SP 800-63B 5.1.1.2: long enough, and not a common
or breached password, repeated or sequential characters, or made of context
words (the service's name, the account's email). Refused with 422
problem+json naming the rule; the password itself is never echoed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from flask.testing import FlaskClient

from backend.auth.passwords import MIN_PASSWORD_LENGTH, password_refusal
from backend.cli import main
from backend.config import REPO_ROOT
from tests.conftest import PATIENT_PROFILE

WEAK = [
    ("aaaaaaaaaaaa", "repetitive"),
    ("abcabcabcabcabc", "repetitive"),
    ("abcdefghijklmn", "sequential"),
    ("1234abcd5678wxyz", "sequential"),
    ("password1234", "common"),
    ("Password2024!", "common"),
    ("qwertyuiopasdf", "common"),
    ("iloveyou12345", "common"),
    ("lamtrack2026!!", "context"),
    ("short", "length"),
]


def invite(clinician: Any) -> str:
    resp = clinician.post("/api/v1/patients", json={**PATIENT_PROFILE, "care_team_id": clinician.team_ids[0]})
    assert resp.status_code == 201, resp.get_json()
    code: str = resp.get_json()["invite_code"]
    return code


def register(client: FlaskClient, code: str, email: str, password: str) -> Any:
    return client.post(
        "/api/v1/auth/register", json={"invite_code": code, "email": email, "password": password}
    )


@pytest.mark.parametrize(("password", "rule"), WEAK)
def test_register_refuses_a_weak_password_naming_the_rule(
    client: FlaskClient, clinician: Any, password: str, rule: str
) -> None:
    code = invite(clinician)
    email = f"pat-{uuid.uuid4().hex[:8]}@example.org"
    resp = register(client, code, email, password)
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    if rule == "length":  # the documented minLength: refused by the schema, field by field
        assert "password" in body["errors"]["json"]
    else:
        assert body["rule"] == rule, body
        assert body["errors"]["password"], body
        assert f"({rule})" in body["detail"]
    assert password not in resp.get_data(as_text=True)
    # The invite was not used up: a good password registers with it.
    assert register(client, code, email, "correct horse battery staple").status_code == 201


def test_register_refuses_a_password_made_of_the_email(client: FlaskClient, clinician: Any) -> None:
    code = invite(clinician)
    for password in ("maria.lopez@example.org", "MariaLopez2026", "examplemaria!!"):
        resp = register(client, code, "maria.lopez@example.org", password)
        assert resp.status_code == 422, (password, resp.get_json())
        assert resp.get_json()["rule"] == "context", password
        assert password not in resp.get_data(as_text=True)


def test_passphrases_are_accepted() -> None:
    for password in (
        "correct horse battery staple",
        "a long clinic password",
        "lamtrack is my favourite app",
        "Tr0ub4dor&3xyz",
    ):
        assert password_refusal(password, email="doc@example.org") is None, password


def test_create_clinician_applies_the_same_rule(
    database_url: str, db_sessionmaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    team = runner.invoke(main, ["create-team", "Chest clinic"]).output.strip()
    for password, rule in (("aaaaaaaaaaaa", "repetitive"), ("doc.brown@example.org", "context")):
        monkeypatch.setenv("LAMTRACK_PASSWORD", password)
        made = runner.invoke(main, ["create-clinician", "--team", team, "--email", "doc.brown@example.org"])
        assert made.exit_code != 0, made.output
        assert f"({rule})" in made.output
        assert password not in made.output


def test_the_document_states_the_minimum_that_is_enforced() -> None:
    spec = yaml.safe_load((REPO_ROOT / "openapi.yaml").read_text())
    password = spec["components"]["schemas"]["Register"]["properties"]["password"]
    assert password["minLength"] == MIN_PASSWORD_LENGTH
    assert "common" in password["description"]
    assert "rule" in spec["components"]["schemas"]["Problem"]["properties"]
    assert json.dumps(password)  # plain data
