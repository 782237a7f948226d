"""Schemathesis, in process, over every operation of the generated OpenAPI document,
with valid tokens for a patient and for a clinician: no 5xx, and every response
(status, content type, headers, body) conforms to the document.

Bounded so that the file stays well under 90 s per database; `scripts/fuzz_live.py`
(run by `.ci/run`) fuzzes a live server with every check and stateful links."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = int(os.environ.get("LAMTRACK_FUZZ_EXAMPLES", "6"))
# Operations whose success changes who can sign in; fuzzed, but they would end
# the session the rest of the run depends on.
SESSION_ENDING = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/refresh")}


def openapi_document(app: Flask) -> dict[str, Any]:
    with app.app_context():
        doc: dict[str, Any] = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return doc


def seed_alert(db_sessionmaker: Any, patient_id: str, team_id: str) -> str:
    import uuid
    from datetime import UTC, datetime, timedelta

    from backend.alerts.models import Alert

    now = datetime.now(UTC) - timedelta(hours=1)
    with db_sessionmaker() as session:
        key = f"fuzz-{uuid.uuid4()}"
        alert = Alert(
            patient_id=patient_id,
            care_team_id=team_id,
            rule="acute_fev1_drop",
            severity="review",
            episode_key=key,
            open_episode_key=key,
            source="evaluation",
            status="open",
            opened_at=now,
            last_seen_at=now,
            numbers={"drop_pct": 12.0},
            explanation="FEV1 fell.",
            patient_message="Please repeat the test.",
            notify_count=0,
            created_at=now,
            updated_at=now,
        )
        session.add(alert)
        session.commit()
        return alert.id


def fuzz(
    app: Flask,
    actors: dict[str, Any],
    ids: dict[str, dict[str, list[str]]],
    *,
    max_examples: int,
    seed: int | None = None,
    report: Callable[[str], None] | None = None,
) -> list[str]:
    """Run every operation for every actor; return the failures (empty when clean).

    Path parameters are drawn half the time from ids the actor may reach (so the
    run gets past the permission check) and otherwise left as generated."""
    schema = schemathesis.openapi.from_dict(openapi_document(app))
    schema.app = app
    failures: list[str] = []
    rng = random.Random(seed)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for role, actor in actors.items():
        headers = actor.headers if actor is not None else {}
        for operation in operations:
            key = (operation.method.upper(), operation.path)
            if actor is not None and key in SESSION_ENDING:
                continue
            known = ids.get(role, {})
            seen: list[str] = []

            run = _make_run(operation, known, headers, seen, rng, max_examples, seed)
            try:
                run()
            except Exception as exc:
                failures.append(
                    f"{role} {operation.method.upper()} {operation.path}: {type(exc).__name__}: {exc}"[:3000]
                )
            if report:
                report(
                    f"{role:9} {operation.method.upper():6} {operation.path:55} {' '.join(sorted(set(seen)))}"
                )
    return failures


def _make_run(
    operation: Any,
    known: dict[str, list[str]],
    headers: dict[str, str],
    seen: list[str],
    rng: random.Random,
    max_examples: int,
    seed: int | None,
) -> Callable[[], None]:
    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case: Any) -> None:
        for name in list(case.path_parameters or {}):
            if name in known and rng.random() < 0.5:
                case.path_parameters[name] = rng.choice(known[name])
        response = case.call(headers=headers)
        seen.append(str(response.status_code))
        case.validate_response(response, checks=CHECKS, headers=headers)

    return run  # type: ignore[no-any-return]


@pytest.fixture
def fuzz_world(make_clinician: Any, make_patient: Any, db_sessionmaker: Any) -> Any:
    clinician = make_clinician()
    patient = make_patient(clinician)
    alert_id = seed_alert(db_sessionmaker, patient.patient_id, clinician.team_ids[0])
    upload = patient.post(
        "/api/v1/patients/me/spirometry",
        json={
            "items": [
                {
                    "client_id": "7f1d2a4e-7a57-4a5e-9b54-1f0c8d7e3b11",
                    "measured_at": "2026-03-01T08:30:00+01:00",
                    "fev1_l": 2.5,
                    "fvc_l": 3.0,
                }
            ]
        },
    )
    record_id = upload.get_json()["results"][0]["id"]
    actors = {"patient": patient, "clinician": clinician}
    ids = {
        "patient": {"pid": ["me", patient.patient_id], "record_id": [record_id]},
        "clinician": {
            "pid": [patient.patient_id],
            "record_id": [record_id],
            "alert_id": [alert_id],
            "team_id": list(clinician.team_ids),
        },
    }
    return actors, ids


def test_every_operation_is_in_the_fuzzed_document(app: Flask) -> None:
    document = openapi_document(app)
    documented = {
        (m.upper(), p)
        for p, item in document["paths"].items()
        for m in item
        if m in ("get", "post", "put", "patch", "delete")
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<{name}>", "{" + name + "}")
            routed |= {(m, path) for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    assert documented == routed


def test_schemathesis_every_operation_with_valid_tokens(app: Flask, fuzz_world: Any) -> None:
    actors, ids = fuzz_world
    failures = fuzz(app, actors, ids, max_examples=MAX_EXAMPLES)
    assert not failures, "\n\n".join(failures)


def test_schemathesis_anonymous(app: Flask) -> None:
    """Without a token every data operation answers 401 problem+json as documented."""
    failures = fuzz(app, {"anonymous": None}, {}, max_examples=2)
    assert not failures, "\n\n".join(failures)
