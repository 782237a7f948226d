"""`lamtrack serve`: the login limit holds for the server as a whole. One worker
with threads by default; several workers only when the counters are shared in
Redis, refused otherwise (at the command and by the worker itself)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from click.testing import CliRunner

from backend.cli import main
from backend.config import REPO_ROOT
from tests.live_server import REDIS_TEST_URL, Live, free_port, lamtrack_serve, require_redis, server_env


def failed_logins(live: Live, n: int) -> list[Any]:
    email = f"guess-{uuid.uuid4().hex[:10]}@example.org"
    return [
        live.request("POST", "/api/v1/auth/login", {"email": email, "password": f"wrong guess {i:04d}"})
        for i in range(n)
    ]


def assert_ten_then_throttled(answers: list[Any]) -> None:
    statuses = [a.status for a in answers]
    assert statuses == [401] * 10 + [429] * (len(answers) - 10), statuses
    throttled = answers[10]
    assert throttled.headers["content-type"] == "application/problem+json"
    assert throttled.json()["status"] == 429
    assert int(throttled.headers["retry-after"]) > 0


def test_default_serve_counts_failed_logins_once(database_url: str, db_sessionmaker: Any) -> None:
    """The 11th failed login in a minute is 429 problem+json, however the
    attempts spread over connections: the default server counts them once."""
    with lamtrack_serve(database_url) as live:
        assert_ten_then_throttled(failed_logins(live, 20))


def test_two_workers_sharing_redis_count_failed_logins_together(
    database_url: str, db_sessionmaker: Any
) -> None:
    require_redis()
    with lamtrack_serve(database_url, "--workers", "2", RATE_LIMIT_STORAGE_URL=REDIS_TEST_URL) as live:
        assert_ten_then_throttled(failed_logins(live, 20))


def test_serve_refuses_several_workers_with_per_process_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    def started(*_args: Any) -> None:
        raise AssertionError("gunicorn would have been started")

    monkeypatch.setattr("os.execvp", started)  # a refusal must come before it
    for name in ("RATE_LIMIT_STORAGE_URL", "LAMTRACK_RATE_LIMIT_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code == 2, result.output
    assert "RATE_LIMIT_STORAGE_URL" in result.output and "one worker" in result.output
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "memory://")
    assert CliRunner().invoke(main, ["serve", "--workers", "3"]).exit_code == 2


def test_worker_refuses_to_boot_beside_others_with_per_process_counters(
    database_url: str, db_sessionmaker: Any
) -> None:
    """gunicorn started by hand with the product's worker and several workers
    stops at boot instead of serving with a multiplied login limit."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{free_port()}",
            "--worker-class",
            "backend.serving.ProblemThreadWorker",
            "--workers",
            "2",
            "backend.wsgi:app",
        ],
        cwd=REPO_ROOT,
        env=server_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "RATE_LIMIT_STORAGE_URL" in proc.stderr


def test_served_errors_are_problem_json_even_from_gunicorn(database_url: str, db_sessionmaker: Any) -> None:
    """A URL over ~4 kB, refused by gunicorn itself before the app sees it, and
    headers too large: problem+json like every other answer, nothing echoed."""
    with lamtrack_serve(database_url) as live:
        for path in ("/api/v1/patients/" + "a" * 5000, "/api/v1/alerts?status=" + "x" * 9000):
            resp = live.request("GET", path)
            assert resp.status == 414, resp.body[:200]
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.json()["status"] == 414 and resp.json()["title"]
            assert b"aaaa" not in resp.body and b"xxxx" not in resp.body
        big = live.request("GET", "/api/v1/healthz", headers={f"X-Filler-{i}": "y" * 100 for i in range(200)})
        assert big.status in (400, 431) and big.headers["content-type"] == "application/problem+json"
        assert live.request("GET", "/api/v1/patients/" + "a" * 3000).status == 401
