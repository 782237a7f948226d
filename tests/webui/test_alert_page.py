"""The alert page as a clinician reads it: the numbers in words and units, times
in the patient's own time zone, and only the actions the alert's state allows."""

from __future__ import annotations

import re
import uuid
from html import unescape
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.webui.helpers import post_form, sign_in

API = "/api/v1"


def _numbers_table(html: str) -> dict[str, str]:
    table = html.split('<table class="numbers">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<th scope="row">(.*?)</th><td>(.*?)</td>', table)
    return {unescape(k): unescape(v) for k, v in rows}


@pytest.fixture
def signed_in(client: Any, db_sessionmaker: Any, make_clinician: Any, make_patient: Any) -> Any:
    clin = make_clinician()
    # 18:00 UTC is 06:00 the next morning in Auckland (NZST in September)
    pat = make_patient(clin, timezone="Pacific/Auckland")
    sign_in(client, db_sessionmaker, email=clin.email, password=PASSWORD, user_id=clin.user_id)
    return clin, pat


def _report(pat: Any, **fields: Any) -> str:
    item = {"client_id": str(uuid.uuid4()), "onset_at": "2026-09-04T18:00:00+00:00", **fields}
    resp = pat.post(f"{API}/patients/me/side-effects", json={"items": [item]})
    assert resp.status_code == 200, resp.get_json()
    alert_id: str = resp.get_json()["results"][0]["alert_id"]
    assert alert_id
    return alert_id


def test_what_happened_is_written_in_words_units_and_local_time(client: Any, signed_in: Any) -> None:
    clin, pat = signed_in
    alert_id = _report(
        pat,
        term="upper_respiratory_infection",
        severity="severe",
        temperature_c=38.6,
        antibiotics_started=False,
    )
    html = client.get(f"/alerts/{alert_id}").get_data(as_text=True)
    numbers = _numbers_table(html)
    assert numbers["Side effect"] == "Upper respiratory infection"
    assert numbers["Temperature"] == "38.6 °C"
    assert numbers["Antibiotics started"] == "no"
    assert numbers["Sudden"] == "no"
    assert numbers["Grade"] == "3"
    assert numbers["Grade from"] == "the patient's PRO-CTCAE severity"
    assert numbers["Onset"] == "5 Sep 2026, 06:00 NZST"
    shown = " ".join(f"{k} {v}" for k, v in numbers.items())
    for raw in ("True", "False", "pro_ctcae", "_", "temperature c", "2026-09-04", "T18:00"):
        assert raw not in shown, raw
    assert "Times in the patient's time zone (Pacific/Auckland)" in unescape(html)
    # the API still answers the stored numbers as they are
    api = clin.get(f"{API}/alerts/{alert_id}").get_json()["numbers"]
    assert api["term"] == "upper_respiratory_infection" and api["grade_source"] == "pro_ctcae"
    assert api["antibiotics_started"] is False and api["onset_at"] == "2026-09-04T18:00:00+00:00"


def test_limb_oedema_is_named_in_plain_words(client: Any, signed_in: Any) -> None:
    _clin, pat = signed_in
    alert_id = _report(pat, term="edema_limbs", severity="severe")
    numbers = _numbers_table(client.get(f"/alerts/{alert_id}").get_data(as_text=True))
    assert numbers["Side effect"] == "Swelling of the limbs (limb oedema)"
    page = client.get(f"/patients/{pat.patient_id}").get_data(as_text=True)
    assert "Swelling of the limbs (limb oedema) (severe)" in page and "edema limbs" not in page


def _action_forms(html: str) -> list[str]:
    return re.findall(r'<form method="post" action="/alerts/[^/"]+/(\w+)"', html)


def _labels_for_inputs(html: str) -> None:
    """Every visible input of the action forms has a <label for=...> naming its id."""
    section = html.split('class="card actions"', 1)[1].split("</section>", 1)[0]
    ids = re.findall(r'<input (?![^>]*type="hidden")[^>]*id="([^"]+)"', section)
    inputs = re.findall(r'<input (?![^>]*type="hidden")[^>]*>', section)
    assert len(ids) == len(inputs) and len(set(ids)) == len(ids), inputs
    for input_id in ids:
        assert re.search(rf'<label for="{input_id}">[^<]+</label>', section), input_id


def test_only_the_actions_the_state_allows_are_offered(client: Any, signed_in: Any) -> None:
    _clin, pat = signed_in
    alert_id = _report(pat, term="edema_limbs", severity="severe")
    page = f"/alerts/{alert_id}"
    html = client.get(page).get_data(as_text=True)
    assert _action_forms(html) == ["acknowledge", "snooze", "resolve"]
    assert html.count('name="note"') == 3
    _labels_for_inputs(html)

    post_form(client, page, f"{page}/acknowledge", {"note": "calling her"})
    html = client.get(page).get_data(as_text=True)
    assert "Acknowledged." in html
    assert _action_forms(html) == ["snooze", "resolve"]
    _labels_for_inputs(html)
    # the same form sent again (a second tab, a double click) changes nothing and says so
    again = post_form(client, page, f"{page}/acknowledge", {"note": "twice"})
    html = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "The alert is already acknowledged; nothing was changed." in html and "twice" not in html

    post_form(client, page, f"{page}/snooze", {"hours": "4"})
    html = client.get(page).get_data(as_text=True)
    # snoozed: acknowledge (ends the snooze), snooze again, resolve
    assert _action_forms(html) == ["acknowledge", "snooze", "resolve"]

    post_form(client, page, f"{page}/resolve", {"note": "seen"})
    html = client.get(page).get_data(as_text=True)
    assert _action_forms(html) == [] and 'class="card actions"' not in html


def test_every_side_effect_term_has_a_plain_name() -> None:
    from backend.clinical.catalog import SIDE_EFFECT_LABELS, SIDE_EFFECT_TERMS

    assert set(SIDE_EFFECT_LABELS) == set(SIDE_EFFECT_TERMS)
    assert SIDE_EFFECT_LABELS["edema_limbs"] == "Swelling of the limbs (limb oedema)"


def test_two_alike_side_effect_alerts_say_which_report_each_is(client: Any, signed_in: Any) -> None:
    """Two severe coughs sent in one late upload: two alerts opened at the same
    moment, each named by its own report's onset on the patient page and its own page."""
    _clin, pat = signed_in
    items = [
        {"client_id": str(uuid.uuid4()), "onset_at": at, "term": "cough", "severity": "severe"}
        for at in ("2026-01-10T19:00:00+00:00", "2026-07-30T17:00:00+00:00")
    ]
    resp = pat.post(f"{API}/patients/me/side-effects", json={"items": items})
    ids = [r["alert_id"] for r in resp.get_json()["results"]]
    assert len(set(ids)) == 2
    page = unescape(client.get(f"/patients/{pat.patient_id}").get_data(as_text=True))
    assert "Side effect needing same-day review</a> (Cough, 11 Jan 2026, 08:00 NZDT)" in page
    assert "Side effect needing same-day review</a> (Cough, 31 Jul 2026, 05:00 NZST)" in page
    alert = unescape(client.get(f"/alerts/{ids[0]}").get_data(as_text=True))
    assert '<p class="subject"><strong>Cough, 11 Jan 2026, 08:00 NZDT</strong></p>' in alert


def test_the_alert_page_never_rounds_a_value_across_its_limit() -> None:
    from backend.webui.present import alert_numbers

    shown = dict(alert_numbers({"percent_predicted": 69.96, "value_ng_ml": 15.04}, "UTC"))
    assert shown["FEV1"] == "69.96 % predicted", shown
    assert shown["Trough level"] == "15.04 ng/mL", shown
