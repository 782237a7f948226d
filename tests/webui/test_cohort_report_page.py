"""The cohort report page: forest plots for the team's clinicians, the
missing-id page for everyone else."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select

from backend.audit import AuditEvent
from tests.conftest import PASSWORD
from tests.reports.helpers import seed_treated
from tests.webui.helpers import CSRF, sign_in


def test_team_clinician_sees_plots_and_suppressed_groups(
    app: Flask, clinician: Any, make_clinician: Any, db_sessionmaker: Any
) -> None:
    team_id = clinician.team_ids[0]
    seed_treated(db_sessionmaker, team_id, n=5, trough=8.0, clinician_id=clinician.user_id)
    browser = app.test_client()
    sign_in(browser, db_sessionmaker, email=clinician.email, password=PASSWORD, user_id=clinician.user_id)
    menu = browser.get("/cohort-report")
    assert menu.status_code == 302 and menu.headers["Location"].endswith(f"/teams/{team_id}/cohort-report")
    resp = browser.get(f"/teams/{team_id}/cohort-report")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert (
        html.count('<svg class="chart forest') == 5 * 2 + 2
    )  # change and on-treatment slope; side effects x2
    assert 'class="chart forest trough_band-change"' in html
    assert html.count('<circle class="estimate"') >= 3  # the 5-10 band in change, on, side effects
    assert "fewer than 5 patients: not shown" in html
    assert "confounding by indication" in html
    assert "REF-" not in html
    with db_sessionmaker() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "cohort_report.read")).all()
    assert [(r.actor_id, r.detail) for r in rows] == [(clinician.user_id, "web")]

    other = make_clinician()
    intruder = app.test_client()
    sign_in(intruder, db_sessionmaker, email=other.email, password=PASSWORD, user_id=other.user_id)
    foreign = intruder.get(f"/teams/{team_id}/cohort-report")
    ghost = intruder.get(f"/teams/{uuid.uuid4()}/cohort-report")
    assert foreign.status_code == ghost.status_code == 404
    # the same page but for its CSRF token (signed with the time of the request)
    assert CSRF.sub("", foreign.get_data(as_text=True)) == CSRF.sub("", ghost.get_data(as_text=True))
    anon = app.test_client().get(f"/teams/{team_id}/cohort-report")
    assert anon.status_code == 302 and "/sign-in" in anon.headers["Location"]
