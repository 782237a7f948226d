"""How `lamtrack serve` runs the app under gunicorn.

One worker process with threads (gthread) by default: the login throttle
(flask-limiter, `backend.limits`) keeps its counters in the process when
`RATE_LIMIT_STORAGE_URL` is `memory://`, so several processes would each count
alone and let a password guesser try N times the limit. More than one worker is
refused unless the counters live in a shared store (`redis://...`).

`ProblemThreadWorker` is gunicorn's gthread worker whose own error answers (a
request line over gunicorn's 4094-byte limit: 414; headers too large: 431; an
unreadable request: 400) are application/problem+json like every other answer
of the API, not gunicorn's HTML page.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from backend.config import Settings
from backend.errors import PROBLEM_JSON

DEFAULT_WORKERS = 1
DEFAULT_THREADS = 8

# Stores that flask-limiter shares between processes; `memory://` is per process.
_PROCESS_LOCAL = {"memory"}


def storage_is_shared(storage_url: str) -> bool:
    """True when rate-limit counters in `storage_url` are seen by every worker."""
    scheme = storage_url.partition("://")[0].strip().lower()
    return bool(scheme) and scheme not in _PROCESS_LOCAL


def workers_problem(workers: int, storage_url: str) -> str | None:
    """Why `workers` processes must not serve with this storage, or None."""
    if workers > 1 and not storage_is_shared(storage_url):
        return (
            f"{workers} workers with RATE_LIMIT_STORAGE_URL={storage_url!r}: each worker would count "
            "login attempts on its own, multiplying the login limit. Serve with one worker "
            "(threads give concurrency) or set RATE_LIMIT_STORAGE_URL=redis://HOST:6379/0."
        )
    return None


_DETAILS = {
    400: "The server could not read the request.",
    414: "The request line (method and URL) is longer than the server accepts.",
    431: "The request headers are larger than the server accepts.",
}


def problem_bytes(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 problem+json answer; nothing of the request is echoed."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": reason,
            "status": status,
            "detail": _DETAILS.get(status, "The server could not handle the request."),
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML error."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, _flag: bool) -> None:
        return None

    def sendall(self, data: bytes) -> None:
        self.data += data


class ProblemThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, answering its own errors as problem+json and
    refusing to boot as one of several workers with per-process rate limits."""

    def init_process(self) -> None:
        reason = workers_problem(self.cfg.workers, Settings.from_env().rate_limit_storage_url)
        if reason is not None:
            self.log.error("refusing to serve: %s", reason)
            sys.exit(3)  # gunicorn's "worker failed to boot": the arbiter stops
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        status_line = captured.data.split(b"\r\n", 1)[0].decode("latin-1")
        _, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        status = int(code) if code.isdigit() else 500
        try:
            from gunicorn import util

            util.write_nonblock(client, problem_bytes(status, reason or "Error"))
        except Exception:  # the client may be gone, as gunicorn itself allows
            self.log.debug("Failed to send error message.")
