"""A digest of the alert rows a pass left on a benchmark database, to check
that two versions of the evaluation give the same alerts.

    .venv/bin/python scripts/bench/alert_digest.py postgresql+psycopg://postgres@127.0.0.1:5432/DB

Prints the number of alerts and alert events and a sha256 (first 16 hex
digits) over each alert's patient, rule, episode, severity, status, numbers,
explanation, patient message, opened and last-seen times and notify count.
"""

from __future__ import annotations

import hashlib
import sys

import psycopg

QUERY = """SELECT patient_id, rule, episode_key, severity, status, numbers::text, explanation,
  patient_message, opened_at, last_seen_at, notify_count FROM alerts
  ORDER BY patient_id, rule, episode_key"""


def main(url: str) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(QUERY).fetchall()
        row = conn.execute("SELECT count(*) FROM alert_events").fetchone()
    digest = hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
    print(f"alerts={len(rows)} events={row[0] if row else 0} digest={digest}")


if __name__ == "__main__":
    main(sys.argv[1])
