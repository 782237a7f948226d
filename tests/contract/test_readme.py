"""The README names only addresses the app answers, and its copy-paste lines
follow the port `scripts/run` serves on."""

from __future__ import annotations

import re
from typing import Any

from backend.config import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
# `/path`, `GET /path?query`, `PATCH /api/v1/teams/{id}` ...
PATH_IN_BACKTICKS = re.compile(r"`(?:[A-Z]+ )?(/[^`\s]*)`")


def _pattern(rule: str) -> re.Pattern[str]:
    """A Flask rule as a regular expression: each `<variable>` is one segment."""
    return re.compile("[^/]+".join(re.escape(p) for p in re.split(r"<[^>]+>", rule)))


def test_every_path_the_readme_names_is_a_route(app: Any) -> None:
    rules = [r.rule for r in app.url_map.iter_rules()]
    patterns = [_pattern(r) for r in rules]
    # the API's per-patient resources are named by their last segment (`/trend`, `/fhir`)
    patient_scoped = [_pattern(r) for r in rules if r.startswith("/api/v1/patients/<")]
    named = {m.group(1).split("?")[0] for m in PATH_IN_BACKTICKS.finditer(README)}
    named = {p.replace("{", "<").replace("}", ">") for p in named if not p.startswith("/usr/")}
    assert "/api/v1/healthz" in named
    missing = []
    for path in sorted(named):
        concrete = re.sub(r"<[^>]+>", "x1", path)
        whole = any(p.fullmatch(concrete) or p.fullmatch(concrete.rstrip("/") or "/") for p in patterns)
        suffix = any(p.fullmatch("/api/v1/patients/x1" + concrete) for p in patient_scoped)
        if not whole and not suffix and path != "/api/v1":
            missing.append(path)
    assert missing == []


def test_accounts_by_hand_follows_the_port_scripts_run_serves_on() -> None:
    run = (REPO_ROOT / "scripts" / "run").read_text()
    assert 'PORT="${PORT:-8000}"' in run
    section = README.split("## Accounts by hand", 1)[1].split("\n## ", 1)[0]
    urls = re.findall(r"curl -s (\S+)", section)
    assert urls and all(u.startswith('"localhost:${PORT:-8000}/') for u in urls), urls
    assert "localhost:8000" not in section
