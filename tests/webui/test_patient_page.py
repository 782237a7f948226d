"""The patient page's chart legends and data-quality table."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from backend.db import session_scope, utcnow
from backend.patients.models import Patient
from tests.conftest import PASSWORD
from tests.factories import ingest
from tests.webui.helpers import sign_in

SVG_CLASSES = re.compile(r'<(?:line|rect|circle|polyline|polygon)\b[^>]*\bclass="([^"]+)"')


def _legend_entries(legend: str) -> list[tuple[str, str, str]]:
    """(the entry's key, its swatch's SVG, its text) for each entry of a legend."""
    return re.findall(r'<span class="key ([^"]+)">(<svg class="swatch".*?</svg>)?([^<]*)</span>', legend)


def test_every_legend_entry_has_the_mark_the_chart_draws(
    client: Any, db_sessionmaker: Any, make_clinician: Any, make_patient: Any, settings: Any
) -> None:
    clin = make_clinician()
    pat = make_patient(clin)
    now = utcnow()
    blow = {"fev1_acceptable": True, "fvc_acceptable": True}
    with session_scope(db_sessionmaker) as s:
        patient = s.get(Patient, pat.patient_id)
        assert patient is not None
        items: list[dict[str, Any]] = [
            {"measured_at": (now - timedelta(days=d)).isoformat(), "fev1_l": 2.4 - d * 0.0005, "fvc_l": 3.2}
            for d in range(200, 1, -1)
        ]
        items.append(
            {
                "measured_at": (now - timedelta(hours=3)).isoformat(),
                "fev1_l": 2.3,
                "fvc_l": 3.1,
                "blows": [
                    {"fev1_l": 2.30, "fvc_l": 3.10, **blow},
                    {"fev1_l": 2.25, "fvc_l": 3.05, **blow},
                    {"fev1_l": 2.22, "fvc_l": 3.02, **blow},
                ],
            }
        )
        items.append(
            {"measured_at": (now - timedelta(days=30)).isoformat(), "fev1_l": 2.3, "setting": "clinic"}
        )
        ingest(s, patient=patient, stream="spirometry", items=items, now=now, settings=settings)
        ingest(
            s,
            patient=patient,
            stream="regimens",
            now=now,
            settings=settings,
            items=[
                {"effective_at": (now - timedelta(days=100)).isoformat(), "kind": "start", "daily_dose_mg": 2}
            ],
        )
        ingest(
            s,
            patient=patient,
            stream="troughs",
            now=now,
            settings=settings,
            items=[  # the first within a week of the start: before steady state, flagged
                {"drawn_at": (now - timedelta(days=97)).isoformat(), "value_ng_ml": 3.1},
                {"drawn_at": (now - timedelta(days=80)).isoformat(), "value_ng_ml": 6.5},
            ],
        )
    sign_in(client, db_sessionmaker, email=clin.email, password=PASSWORD, user_id=clin.user_id)
    html = client.get(f"/patients/{pat.patient_id}").get_data(as_text=True)
    charts = re.findall(r'<svg class="chart (fev1-chart|trough-chart)".*?</svg>', html, re.S)
    assert charts == ["fev1-chart", "trough-chart"]
    chart_svgs = re.findall(r'(<svg class="chart .*?</svg>)\s*(<p class="legend">.*?</p>)', html, re.S)
    assert len(chart_svgs) == 2
    keys_seen = []
    for svg, legend in chart_svgs:
        drawn = set(SVG_CLASSES.findall(svg))
        entries = _legend_entries(legend)
        assert entries and len(entries) == legend.count('class="key ')
        for key, swatch, text in entries:
            assert swatch and text.strip(), (key, text)
            marks = SVG_CLASSES.findall(swatch)
            assert marks, key
            # the swatch is drawn like the chart's own element of that series
            for mark in marks:
                assert mark in drawn, (key, mark, sorted(drawn))
            keys_seen.append(key)
    assert "trend-band" in keys_seen and "(shaded: interval)" not in html
    grades = html.split('<table class="grades">', 1)[1].split("</table>", 1)[0]
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>", grades))
    assert rows == {"A": "1", "ungraded (sent without blows)": "89"}
