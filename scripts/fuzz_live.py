"""Schemathesis with every check (`--checks all`) over every operation of
openapi.yaml, against a real server on loopback (werkzeug in a thread) over a
fresh database, once with a patient's token and once with a clinician's. The
phases are examples, coverage, fuzzing and stateful (the OpenAPI links of the
document: create a patient, then read it; upload, then read and delete the
record; list alerts, then act on one). Seeded, and bounded by --max-examples.

    .venv/bin/python scripts/fuzz_live.py --db sqlite|postgres [--examples 25] [--seed N]

Prints, for each token, the operations tested, the test cases generated and the
failures (with the reproducing request); exit status 1 when any check failed."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

PASSWORD = "correct horse battery staple"  # noqa: S105 - the seeded fuzzing accounts
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def seed(app: Any) -> dict[str, str]:
    """A care team, its clinician, a registered patient with a record and an open
    alert; returns the tokens and ids."""
    from backend.db import session_scope
    from backend.patients.accounts import create_clinician, create_team

    client = app.test_client()
    email = f"clin-{uuid.uuid4().hex[:8]}@example.org"
    with session_scope(app.extensions["lamtrack.sessionmaker"]) as session:
        team_id = create_team(session, name="Fuzz team").id
        create_clinician(session, team_id=team_id, email=email, password=PASSWORD)
    clinician = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {clinician['access_token']}"}
    created = client.post(
        "/api/v1/patients",
        headers=headers,
        json={
            "sex_at_birth": "female",
            "date_of_birth": "1985-03-02",
            "height_cm": 165.0,
            "lam_type": "sporadic",
            "timezone": "Europe/London",
            "care_team_id": team_id,
        },
    ).get_json()
    patient = client.post(
        "/api/v1/auth/register",
        json={
            "invite_code": created["invite_code"],
            "email": f"pat-{uuid.uuid4().hex[:8]}@example.org",
            "password": PASSWORD,
        },
    ).get_json()
    upload = client.post(
        "/api/v1/patients/me/events",
        headers={"Authorization": f"Bearer {patient['access_token']}"},
        json={
            "items": [
                {
                    "client_id": str(uuid.uuid4()),
                    "occurred_at": "2026-03-01T08:30:00+01:00",
                    "kind": "pneumothorax",
                    "note": "right side",
                }
            ]
        },
    ).get_json()
    assert upload["results"][0]["alert_id"], upload
    return {
        "record_id": upload["results"][0]["id"],
        "alert_id": upload["results"][0]["alert_id"],
        "patient": patient["access_token"],
        "clinician": clinician["access_token"],
        "patient_id": created["id"],
        "team_id": team_id,
    }


# Operations whose rules go beyond what JSON Schema can say, so that a body valid
# against the document is still refused with 422: a date of birth in the past, a
# known IANA time zone, trough target low below high, exactly one of `until` and
# `hours`, a threshold name the engine knows, an invite code that exists, a paging
# cursor the server issued (opaque). For these, and only these, a 422 counts as a
# correct answer to schema-valid data.
SEMANTIC_422 = ["createPatient", "updatePatient", "updateTeam", "snoozeAlert", "registerPatient"]


def paged_operations() -> list[str]:
    """Operations that take an opaque `cursor` from a previous page."""
    import yaml

    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    return sorted(
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method in ("get", "post") and any(p["name"] == "cursor" for p in operation.get("parameters", []))
    )


POSITIVE_EXPECTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "422"]
# A stream upload validates each item on its own and answers 200 with a result per
# item (`status: invalid` and its errors for a bad one), so that one bad reading
# does not hold back the others of an offline batch. A malformed envelope is
# still 422. For these operations 200 is a correct answer to an invalid item.
PER_ITEM_UPLOADS = [
    "uploadSpirometrySessions",
    "uploadSirolimusDoses",
    "uploadRegimenEvents",
    "uploadSideEffectReports",
    "uploadTroughResults",
    "uploadLamEvents",
]
NEGATIVE_EXPECTED = [
    "200", "400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429",
]  # fmt: skip
# A URL over 4096 bytes (a generated query string can be) is refused with 414
# before anything else: a rejection like Schemathesis's default ones.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "414", "415", "422", "428", "429", "5xx"]


def write_config(path: Path, role: str, world: dict[str, str]) -> None:
    """schemathesis.toml: the ids this caller may reach are drawn half the time for
    each path parameter (so that runs get past the permission check), otherwise the
    value is generated."""
    known = {
        "pid": (["me"] if role == "patient" else []) + [world["patient_id"]],
        "record_id": [world["record_id"]],
        "alert_id": [world["alert_id"]],
        "team_id": [world["team_id"]],
    }
    lines = []
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", "values = [" + ", ".join(f'"{v}"' for v in values) + "]", ""]
    lines += [
        "[checks.negative_data_rejection]",
        "expected-statuses = [" + ", ".join(f'"{s}"' for s in REJECTED) + "]",
        "",
    ]
    lines += ["[parameters]"]
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in known]
    for operation_id in SEMANTIC_422 + paged_operations():
        lines += [
            "",
            "[[operations]]",
            f'include-operation-id = "{operation_id}"',
            "checks.positive_data_acceptance.expected-statuses = ["
            + ", ".join(f'"{s}"' for s in POSITIVE_EXPECTED)
            + "]",
        ]
    for operation_id in PER_ITEM_UPLOADS:
        lines += [
            "",
            "[[operations]]",
            f'include-operation-id = "{operation_id}"',
            "checks.negative_data_rejection.expected-statuses = ["
            + ", ".join(f'"{s}"' for s in NEGATIVE_EXPECTED)
            + "]",
        ]
    path.write_text("\n".join(lines) + "\n")


def serve(app: Any) -> tuple[Any, str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def run_schemathesis(
    base_url: str, token: str, *, config: Path, examples: int, seed: int, report: Path, workers: int
) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        str(ROOT / "openapi.yaml"),
        "--url",
        base_url,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--header",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=config.parent)
    return done.returncode, done.stdout + done.stderr


def summarize(output: str) -> str:
    """Operations tested, test cases generated and failures, from the summary."""
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated, (.*)", output)
    return (
        f"operations tested {tested.group(1) if tested else '?'}, "
        f"test cases {cases.group(1) if cases else '?'} ({cases.group(2).strip() if cases else '?'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20261202)
    # One worker: Schemathesis runs its workers as threads of one process, and
    # Hypothesis raises and restores the (process-wide) recursion limit around each
    # test; with two threads one could restore it under the other, whose next
    # ast.parse then hit CPython 3.11's "AST constructor recursion depth mismatch"
    # (python/cpython#106905), reported as a Runtime Error of the fuzzer, not of the API.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report-dir", default=None)
    args = parser.parse_args()

    import logging

    from backend import create_app
    from backend.config import Settings
    from backend.db_admin import create_database, drop_database, upgrade

    tmp = Path(tempfile.mkdtemp(prefix="lamtrack-fuzz-"))
    report_dir = Path(args.report_dir) if args.report_dir else tmp
    report_dir.mkdir(parents=True, exist_ok=True)
    server_url = os.environ.get("LAMTRACK_TEST_POSTGRES_URL", DEFAULT_PG)
    url = (
        create_database(server_url, "lamtrack_fuzz") if args.db == "postgres" else f"sqlite:///{tmp}/fuzz.db"
    )
    status = 0
    try:
        upgrade(url, quiet=True)
        app = create_app(
            Settings(
                database_url=url,
                jwt_keys={"fuzz-1": uuid.uuid4().hex * 2},
                access_token_seconds=3600,
                login_rate_limit="100000 per minute",
                email_backend="file",
                email_dir=str(tmp / "outbox"),
                log_level="ERROR",
            )
        )
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        world = seed(app)
        server, base_url = serve(app)
        try:
            for role in ("patient", "clinician"):
                report = report_dir / f"schemathesis-{args.db}-{role}.ndjson"
                config = tmp / role / "schemathesis.toml"
                config.parent.mkdir()
                write_config(config, role, world)
                started = time.monotonic()
                code, output = run_schemathesis(
                    base_url,
                    world[role],
                    config=config,
                    examples=args.examples,
                    seed=args.seed,
                    report=report,
                    workers=args.workers,
                )
                elapsed = time.monotonic() - started
                (report_dir / f"schemathesis-{args.db}-{role}.txt").write_text(output)
                print(output)
                print(
                    f"== schemathesis on {args.db} with the {role}'s token: {summarize(output)}, "
                    f"exit {code}, {elapsed:.0f} s"
                )
                status = status or code
        finally:
            server.shutdown()
            app.extensions["lamtrack.engine"].dispose()
    finally:
        if args.db == "postgres":
            drop_database(server_url, url)
    return 1 if status else 0


if __name__ == "__main__":
    raise SystemExit(main())
