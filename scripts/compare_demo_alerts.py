"""Alerts of the demo cohort (`lamtrack demo`) made by two checkouts of the code.

Each checkout runs the demo (seeding through the real services, weekly replayed
evaluations, a final live pass) in its own process on its own fresh SQLite
database, with the same clock; the alerts left behind are compared as sets of
(patient, rule, episode, severity, status, opened, resolved); a stored row
named in an episode key by its id (random per run) is named by its table and
time instead. Exits 1 if the two sets differ.

    .venv/bin/python scripts/compare_demo_alerts.py --before DIR [--after DIR] [--patients 20] [--weeks 30]

DIR is a checkout (e.g. `git archive <commit> | tar -x -C DIR`); `--after`
defaults to this one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
NOW = "2026-11-30T06:00:00+00:00"

RUN = """
import json, sys
from datetime import datetime
sys.path.insert(0, {code!r})
import backend
assert backend.__file__.startswith({code!r}), backend.__file__
from sqlalchemy import select, text
from backend.alerts.models import Alert
from backend.cli.demo import run_demo
from backend.config import Settings
from backend.db import make_engine, make_sessionmaker
TIMES = [("spirometry_sessions", "measured_at"), ("sirolimus_doses", "taken_at"),
         ("regimen_events", "effective_at"), ("trough_results", "drawn_at"),
         ("side_effect_reports", "onset_at"), ("lam_events", "occurred_at")]

settings = Settings.from_env(database_url={url!r}, email_backend="file", email_dir={mail!r})
now = datetime.fromisoformat({now!r})
run_demo(settings, n_patients={n}, weeks={weeks}, seed=7, echo=lambda _: None, now=now)
engine = make_engine({url!r})
with make_sessionmaker(engine)() as session:
    # episode keys name stored rows by their (random) ids: name them by table and time
    stable = {{}}
    for table, col in TIMES:
        for rid, at in session.execute(text(f"SELECT id, {{col}} FROM {{table}}")):
            stable[rid] = f"{{table}}@{{at}}"

    def episode(key):
        rule, _, rest = key.partition(":")
        return ":".join([rule] + [stable.get(part, part) for part in rest.split(":")])

    rows = sorted(
        [a.patient_id, a.rule, episode(a.episode_key), a.severity, a.status, a.opened_at.isoformat(),
         a.resolved_at.isoformat() if a.resolved_at else None]
        for a in session.scalars(select(Alert))
    )
engine.dispose()
print(json.dumps(rows))
"""


def alerts_of(code: Path, n: int, weeks: int) -> set[tuple[str | None, ...]]:
    with tempfile.TemporaryDirectory(prefix="lamtrack-demo-") as tmp:
        url = f"sqlite:///{tmp}/demo.db"
        script = RUN.format(code=str(code), url=url, mail=f"{tmp}/mail", n=n, weeks=weeks, now=NOW)
        env = {**os.environ, "LAMTRACK_JWT_KEYS": "demo-1:" + "d" * 48, "LOG_LEVEL": "WARNING"}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise SystemExit(f"demo run of {code} failed:\n{out.stderr[-3000:]}")
        return {tuple(row) for row in json.loads(out.stdout.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=HERE)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--weeks", type=int, default=30)
    args = parser.parse_args()
    print(f"clock {NOW}; run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    before = alerts_of(args.before.resolve(), args.patients, args.weeks)
    after = alerts_of(args.after.resolve(), args.patients, args.weeks)
    by_rule: dict[str, int] = {}
    for row in after:
        by_rule[str(row[1])] = by_rule.get(str(row[1]), 0) + 1
    print(f"before ({args.before}): {len(before)} alerts; after ({args.after}): {len(after)} alerts")
    print("after by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(by_rule.items())))
    for row in sorted(before - after, key=str):
        print("only before:", row)
    for row in sorted(after - before, key=str):
        print("only after:", row)
    same = before == after and bool(after)
    print("IDENTICAL" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
