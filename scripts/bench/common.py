"""Shared helpers for benchmarks, load runs and drills.

Databases are created for one run and dropped afterwards; servers are real
gunicorn processes bound to 127.0.0.1; users log in through the real API.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PG_SERVER = os.environ.get("LAMTRACK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery staple"  # noqa: S105 - bench accounts on a throwaway database
JWT_KEYS = "bench-1:" + "b" * 48


# ------------------------------------------------------------------ databases


def create_pg_database(prefix: str = "lamtrack_bench") -> str:
    from backend.db_admin import create_database

    return create_database(PG_SERVER, prefix)


def drop_pg_database(url: str) -> None:
    from backend.db_admin import drop_database

    drop_database(PG_SERVER, url)


def upgrade(url: str) -> None:
    from backend.db_admin import upgrade as upgrade_schema

    upgrade_schema(url, quiet=True)


@contextlib.contextmanager
def database(kind: str) -> Iterator[str]:
    """A migrated, empty database of `kind` (postgres | sqlite), removed afterwards."""
    if kind == "postgres":
        url = create_pg_database()
        try:
            upgrade(url)
            yield url
        finally:
            drop_pg_database(url)
    else:
        with tempfile.TemporaryDirectory(prefix="lamtrack-bench-") as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite3"
            upgrade(url)
            yield url


# ------------------------------------------------------------------ seeding


@dataclass
class Seeded:
    team_id: str
    clinician_email: str
    patients: list[tuple[str, str]] = field(default_factory=list)  # (patient id, email)


def seed_accounts(url: str, n_patients: int, *, tag: str = "") -> Seeded:
    """A care team, one clinician and `n_patients` patients with accounts, all
    with the password PASSWORD (one argon2 hash shared, to seed quickly)."""
    from backend.auth.models import User
    from backend.auth.passwords import hash_password
    from backend.db import make_engine, make_sessionmaker, session_scope
    from backend.patients.accounts import create_clinician, create_team
    from tests.factories import add_patient

    tag = tag or secrets.token_hex(3)
    engine = make_engine(url)
    pw_hash = hash_password(PASSWORD)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            team = create_team(session, name=f"Bench team {tag}")
            email = f"clinician-{tag}@bench.invalid"
            create_clinician(session, team_id=team.id, email=email, password=PASSWORD)
            seeded = Seeded(team.id, email)
            for i in range(n_patients):
                p_email = f"patient-{tag}-{i}@bench.invalid"
                patient = add_patient(
                    session,
                    team_id=team.id,
                    user_email=p_email,
                    date_of_birth=date(1975 + i % 20, 1 + i % 12, 1 + i % 28),
                    height_cm=150.0 + i % 30,
                )
                session.get(User, patient.user_id).password_hash = pw_hash  # type: ignore[union-attr]
                seeded.patients.append((patient.id, p_email))
    finally:
        engine.dispose()
    return seeded


# ------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "LAMTRACK_JWT_KEYS": JWT_KEYS,
            "ACCESS_TOKEN_SECONDS": "7200",
            "LOGIN_RATE_LIMIT": "100000 per minute",
            "LOG_LEVEL": "WARNING",
            "EMAIL_BACKEND": "console",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra)
    return env


class Server:
    """gunicorn on 127.0.0.1 serving `app` (module:variable)."""

    def __init__(
        self,
        app: str,
        url: str,
        *,
        workers: int = 1,
        threads: int = 1,
        env: dict[str, str] | None = None,
        timeout: int = 60,
    ) -> None:
        self.port = free_port()
        self.app = app
        self.workers = workers
        self.threads = threads
        self.env = server_env(url, **(env or {}))
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the server's life
            prefix="lamtrack-gunicorn-",
            suffix=".log",
            delete=False,
        )

    def start(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--threads",
            str(self.threads),
            "--timeout",
            str(self.timeout),
            "--graceful-timeout",
            "5",
            self.app,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log.name}")
            try:
                status, _ = Client(self.port).request("GET", "/api/v1/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start; see {self.log.name}")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Client:
    """A small keep-alive HTTP client (cheap on the client side, so that the
    server's cost dominates what is measured)."""

    def __init__(self, port: int, token: str | None = None, timeout: float = 60) -> None:
        self.port = port
        self.token = token
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        status, raw, _ = self.raw(method, path, body, headers)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        hdrs = {"Content-Type": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data, {k.lower(): v for k, v in resp.getheaders()}
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def login(port: int, email: str, password: str = PASSWORD) -> str:
    status, body = Client(port).request("POST", "/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise RuntimeError(f"login of {email} failed: {status} {body}")
    return str(body["access_token"])


# ------------------------------------------------------------------ payloads


def spirometry_items(n: int, *, start_day: int = 0, rng_seed: int = 0) -> list[dict[str, Any]]:
    """n plausible spirometry sessions (one a day from 2010-01-01, all in the past), fresh client ids."""
    import random

    rnd = random.Random(rng_seed)
    items = []
    for i in range(n):
        day = start_day + i
        fev1 = round(rnd.uniform(1.4, 2.6), 3)
        items.append(
            {
                "client_id": str(uuid.uuid4()),
                "measured_at": f"{date.fromordinal(date(2010, 1, 1).toordinal() + day).isoformat()}"
                f"T0{7 + i % 3}:{10 + i % 50:02d}:00+01:00",
                "setting": "home",
                "fev1_l": fev1,
                "fvc_l": round(fev1 / 0.72, 3),
                "pef_l_s": round(rnd.uniform(4, 8), 2),
                "device": {"manufacturer": "Bench", "model": "B1", "serial": "SN-1"},
            }
        )
    return items


# ------------------------------------------------------------------ reporting


def machine() -> dict[str, str]:
    def sh(cmd: str) -> str:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()  # noqa: S602

    return {
        "nproc": sh("nproc"),
        "memory": sh("free -h | awk '/Mem:/ {print $2}'"),
        "python": platform.python_version(),
        "postgresql": sh("psql -h 127.0.0.1 -U postgres -d test -Atc 'show server_version'"),
        "sqlite": __import__("sqlite3").sqlite_version,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def print_machine() -> None:
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()), flush=True)
