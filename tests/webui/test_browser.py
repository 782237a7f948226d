"""The web pages in a real browser: Debian's headless Chromium driven by
Selenium through /usr/bin/chromedriver, against the app served on a loopback
port by a real server thread.

A clinician follows the link of a real alert email (queued in the outbox,
written as an .eml file by the file backend), signs in with her password and
a TOTP code, acknowledges the alert and opens the patient page with its charts.

Skipped only outside CI when chromium is absent; under CI (env CI set) a
missing chromium fails.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import random
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from backend import create_app
from backend.alerts.emails import queue_alert_emails
from backend.alerts.models import Alert
from backend.auth.models import User
from backend.db import session_scope, utcnow
from backend.notify.outbox import deliver_outbox
from backend.patients.models import Patient
from tests.conftest import PASSWORD
from tests.contract.test_authorization_matrix import _add_alert
from tests.factories import ingest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "patient-page.png"

pytestmark = pytest.mark.browser


def _have_browser() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not _have_browser():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing: run scripts/install-browser")
        pytest.skip(f"{CHROMIUM} / {CHROMEDRIVER} not installed (scripts/install-browser installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1100,1800")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served(settings: Any, db_sessionmaker: Any) -> Iterator[tuple[str, Any]]:
    """The app on a loopback port; its email links point at that address."""
    server = make_server("127.0.0.1", 0, lambda env, start: [], threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app_settings = dataclasses.replace(settings, public_base_url=base)
    server.app = create_app(app_settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, app_settings
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.app.extensions["lamtrack.engine"].dispose()


def submit_and_wait(driver: Any, act: Any) -> None:
    """Click, then wait until the next page has replaced this one and finished loading.

    The old page is marked with a property on its window object; a new document gets a new
    window object without it. While the browser is between documents the driver may answer
    any command with an error (a stale element, or "node does not belong to the document"),
    so errors count as "not yet" rather than as a failure.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    driver.execute_script("window.__lamtrackOldPage = true;")
    act()

    def replaced(d: Any) -> bool:
        return bool(
            d.execute_script(
                "return window.__lamtrackOldPage === undefined && document.readyState === 'complete';"
            )
        )

    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(replaced)


def test_email_link_sign_in_acknowledge_and_patient_charts(
    browser: Any, served: tuple[str, Any], make_clinician: Any, make_patient: Any, db_sessionmaker: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    base, app_settings = served
    clin = make_clinician()
    pat = make_patient(clin, external_ref="LAM-0042")
    now = utcnow()
    with session_scope(db_sessionmaker) as s:
        patient = s.get(Patient, pat.patient_id)
        assert patient is not None
        # declining before treatment (started 200 days ago), level on it, with day-to-day noise
        noise = random.Random(7)
        items = [
            {
                "measured_at": (now - timedelta(days=d, hours=3)).isoformat(),
                "fev1_l": round(2.15 + 0.15 * max(d - 200, 0) / 365 + noise.gauss(0, 0.05), 3),
            }
            for d in range(400, 0, -1)
        ]
        for d in (330, 150, 20):
            items.append(
                {
                    "measured_at": (now - timedelta(days=d)).isoformat(),
                    "fev1_l": 2.25 + d * 0.0003,
                    "setting": "clinic",
                }
            )
        ingest(s, patient=patient, stream="spirometry", items=items, now=now, settings=app_settings)
        ingest(
            s,
            patient=patient,
            stream="regimens",
            now=now,
            settings=app_settings,
            items=[
                {
                    "effective_at": (now - timedelta(days=200)).isoformat(),
                    "kind": "start",
                    "daily_dose_mg": 1.0,
                },
                {
                    "effective_at": (now - timedelta(days=120)).isoformat(),
                    "kind": "dose_change",
                    "daily_dose_mg": 2.0,
                },
            ],
        )
        ingest(
            s,
            patient=patient,
            stream="troughs",
            now=now,
            settings=app_settings,
            items=[
                {"drawn_at": (now - timedelta(days=196)).isoformat(), "value_ng_ml": 3.1},
                {"drawn_at": (now - timedelta(days=170)).isoformat(), "value_ng_ml": 4.2},
                {"drawn_at": (now - timedelta(days=100)).isoformat(), "value_ng_ml": 7.9},
            ],
        )
        ingest(
            s,
            patient=patient,
            stream="side-effects",
            now=now,
            settings=app_settings,
            items=[
                {
                    "onset_at": (now - timedelta(days=60)).isoformat(),
                    "term": "mucositis_oral",
                    "severity": "moderate",
                }
            ],
        )
    alert_id = _add_alert(db_sessionmaker, pat.patient_id, clin.team_ids[0])
    with session_scope(db_sessionmaker) as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None
        assert queue_alert_emails(s, alert=alert, settings=app_settings, now=now) == 1
    deliver_outbox(db_sessionmaker, settings=app_settings)
    [eml] = Path(app_settings.email_dir).glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    link = re.search(r"https?://\S+", text)
    assert link is not None and link.group(0) == f"{base}/alerts/{alert_id}"

    browser.get(link.group(0))
    assert "/sign-in" in browser.current_url
    browser.find_element(By.NAME, "email").send_keys(clin.email)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    submit_and_wait(
        browser, lambda: browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    )
    assert browser.current_url.endswith("/sign-in/enrol")
    assert browser.find_elements(By.CSS_SELECTOR, ".qr svg")
    secret = browser.find_element(By.CSS_SELECTOR, "code.secret").text
    with db_sessionmaker() as s:
        assert s.scalars(select(User.totp_secret).where(User.id == clin.user_id)).one() == secret
    browser.find_element(By.NAME, "code").send_keys(pyotp.TOTP(secret).now())
    submit_and_wait(
        browser, lambda: browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "ul.codes li")) == 10
    submit_and_wait(browser, lambda: browser.find_element(By.LINK_TEXT, "Continue").click())
    assert browser.current_url == link.group(0)
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Acute FEV1 drop"

    form = browser.find_element(By.CSS_SELECTOR, "form[action$='/acknowledge']")
    form.find_element(By.NAME, "note").send_keys("calling her today")
    submit_and_wait(browser, lambda: form.find_element(By.CSS_SELECTOR, "button").click())
    WebDriverWait(browser, 10).until(lambda d: "Acknowledged." in d.page_source)
    assert "acknowledged" in browser.find_element(By.ID, "alert-status").text.lower(), browser.page_source[
        :1500
    ]
    assert "calling her today" in browser.find_element(By.CSS_SELECTOR, "table.history").text
    with db_sessionmaker() as s:
        assert s.get(Alert, alert_id).acknowledged_by == clin.user_id  # type: ignore[union-attr]

    submit_and_wait(browser, lambda: browser.find_element(By.LINK_TEXT, "LAM-0042").click())
    assert browser.current_url == f"{base}/patients/{pat.patient_id}"
    for selector in (
        "svg.fev1-chart polyline.home",
        "svg.fev1-chart rect.clinic",
        "svg.fev1-chart line.trend",
        "svg.fev1-chart polygon.trend-band",
        "svg.fev1-chart line.pct70",
        "svg.fev1-chart line.lln",
        "svg.fev1-chart line.regimen",
        "svg.trough-chart rect.target",
        "svg.trough-chart circle.trough",
        "svg.trough-chart polyline.dose-steps",
    ):
        assert browser.find_elements(By.CSS_SELECTOR, selector), selector
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.fev1-chart rect.clinic")) == 3
    # the stylesheet applied (no inline style is allowed by the page's CSP)
    assert (
        browser.find_element(By.CSS_SELECTOR, "header.top").value_of_css_property("background-color")
        != "rgba(0, 0, 0, 0)"
    )
    # no Content-Security-Policy violation or failed resource (the browser has no favicon to ask for)
    errors = [
        e
        for e in browser.get_log("browser")
        if e.get("level") == "SEVERE" and "favicon.ico" not in e["message"]
    ]
    assert not errors, errors
    shot = Path(app_settings.email_dir).parent / "patient-page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("LAMTRACK_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
