"""`lamtrack serve` as an operator starts it: gunicorn on a free loopback port,
real HTTP from fresh connections (each may land on another worker)."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backend.config import REPO_ROOT

LAMTRACK = str(Path(sys.executable).with_name("lamtrack"))
# Rate-limit counters of the tests that share Redis live in this database number
# (nothing else in tests/ or scripts/ uses it; scripts/load uses 0).
REDIS_TEST_URL = "redis://127.0.0.1:6379/11"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def loopback_address() -> str:
    """A loopback source address of its own, so that the per-address login
    limit of one test is not shared with another test's requests."""
    return f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}.{random.randrange(2, 255)}"


def require_redis(url: str = REDIS_TEST_URL) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        message = f"Redis at {url} is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Live:
    port: int
    source: str

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """One request on a fresh connection from this server's source address."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(self.source, 0))
        try:
            data = json.dumps(body).encode() if body is not None else None
            sent = {"Connection": "close", **(headers or {})}
            if data is not None:
                sent["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMTRACK_")}
    for name in ("RATE_LIMIT_STORAGE_URL", "LOGIN_RATE_LIMIT", "DATABASE_URL", "PORT"):
        env.pop(name, None)
    instance = tempfile.mkdtemp(prefix="lamtrack-live-")
    env.update(
        DATABASE_URL=database_url,
        LAMTRACK_JWT_KEYS="live-1:" + "k" * 48,
        LAMTRACK_INSTANCE_DIR=instance,
        EMAIL_DIR=str(Path(instance) / "outbox"),
        **extra,
    )
    return env


@contextmanager
def lamtrack_serve(database_url: str, *args: str, **env: str) -> Iterator[Live]:
    """`lamtrack serve --port P ARGS...` until the block ends."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="lamtrack-serve-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [LAMTRACK, "serve", "--port", str(port), *args],
        cwd=REPO_ROOT,
        env=server_env(database_url, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    live = Live(port, loopback_address())
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"lamtrack serve exited: {Path(log.name).read_text()[-3000:]}")
            try:
                if live.request("GET", "/api/v1/healthz").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"lamtrack serve did not answer: {Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        yield live
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
