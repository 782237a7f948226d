"""The cohort report page of a care team, with server-rendered SVG forest plots
(no script). The numbers come from `backend.reports`; nothing is computed here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import redirect, render_template, url_for
from markupsafe import Markup, escape

from backend.auth.permissions import clinician_team_ids
from backend.auth.principal import Principal
from backend.db import utcnow
from backend.reports.services import team_report
from backend.web import db, settings
from backend.webui.routes import blp, page_not_found
from backend.webui.signin import clinician_page

W, ROW, LABEL, RIGHT, TOP = 900, 34, 260, 24, 40


def _ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000) if span / s <= 8)
    v = step * (lo // step)
    out = []
    while v <= hi + 1e-9:
        if v >= lo - 1e-9:
            out.append(round(v, 6))
        v += step
    return out


def forest_plot(title: str, unit: str, rows: Sequence[dict[str, Any]], *, css: str, min_cell: int) -> Markup:
    """One row per group: its estimate and interval, or why it has none."""
    values = [
        v for r in rows if r["estimate"] is not None for v in (r["ci_low"], r["ci_high"], r["estimate"])
    ]
    lo, hi = (min([*values, 0.0]), max([*values, 0.0])) if values else (-1.0, 1.0)
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    height = TOP + ROW * len(rows) + 30

    def x(v: float) -> float:
        return LABEL + (v - lo) / (hi - lo) * (W - LABEL - RIGHT)

    body = [
        f'<text class="unit" x="{LABEL}" y="16">{escape(unit)}</text>',
        f'<line class="zero" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{TOP - 10}" y2="{height - 26}"/>',
    ]
    for t in _ticks(lo, hi):
        body.append(
            f'<text class="tick" x="{x(t):.1f}" y="{height - 8}" text-anchor="middle">{t:g}</text>'
            f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP - 10}" y2="{height - 26}"/>'
        )
    for k, r in enumerate(rows):
        y = TOP + ROW * k + ROW / 2
        label = f"{r['label']}" + (f" (n={r['n']})" if r["n"] is not None else "")
        body.append(f'<text class="label" x="8" y="{y + 4:.1f}">{escape(label)}</text>')
        if r["suppressed"]:
            body.append(
                f'<text class="suppressed" x="{LABEL + 6}" y="{y + 4:.1f}">'
                f"fewer than {min_cell} patients: not shown</text>"
            )
        elif r["estimate"] is None:
            body.append(f'<text class="suppressed" x="{LABEL + 6}" y="{y + 4:.1f}">not estimable</text>')
        else:
            body.append(
                f'<line class="ci" x1="{x(r["ci_low"]):.1f}" x2="{x(r["ci_high"]):.1f}" '
                f'y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<circle class="estimate" cx="{x(r["estimate"]):.1f}" cy="{y:.1f}" r="5">'
                f"<title>{r['estimate']:+.1f} ({r['ci_low']:+.1f} to {r['ci_high']:+.1f})</title></circle>"
            )
    return Markup(  # noqa: S704 (numbers and escaped text only)
        f'<svg class="chart forest {css}" viewBox="0 0 {W} {height}" role="img" '
        f'aria-labelledby="{css}-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{css}-title">{escape(title)}</title>' + "".join(body) + "</svg>"
    )


def _rows(groups: Sequence[dict[str, Any]], pick: Any) -> list[dict[str, Any]]:
    out = []
    for g in groups:
        est = None if g["suppressed"] else pick(g)
        out.append(
            {
                "label": g["group"],
                "n": g["n_patients"],
                "suppressed": g["suppressed"],
                "estimate": est["estimate"] if est else None,
                "ci_low": est["ci_low"] if est else None,
                "ci_high": est["ci_high"] if est else None,
            }
        )
    return out


def report_sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per grouping: its rows and the plots of slope change and side-effect rates."""
    min_cell = report["min_cell_size"]
    order: list[str] = []
    by: dict[str, list[dict[str, Any]]] = {}
    for g in report["groups"]:
        if g["grouping"] not in by:
            order.append(g["grouping"])
        by.setdefault(g["grouping"], []).append(g)
    sections = []
    for key in order:
        groups = by[key]
        title = groups[0]["grouping_title"]
        plots = [
            forest_plot(
                f"{title}: change in FEV1 slope on treatment",
                "Change in FEV1 slope, on minus before treatment (mL/year)",
                _rows(groups, lambda g: g["slopes"]["fev1_ml_per_year"]["change"]),
                css=f"{key}-change",
                min_cell=min_cell,
            ),
            forest_plot(
                f"{title}: FEV1 slope on treatment",
                "FEV1 slope on treatment (mL/year)",
                _rows(groups, lambda g: g["slopes"]["fev1_ml_per_year"]["on_treatment"]),
                css=f"{key}-on",
                min_cell=min_cell,
            ),
        ]
        if any(g["side_effects"] for g in groups):
            plots.append(
                forest_plot(
                    f"{title}: side effects",
                    "Side effects per patient-year on treatment",
                    _rows(
                        groups, lambda g: g["side_effects"]["per_patient_year"] if g["side_effects"] else None
                    ),
                    css=f"{key}-side-effects",
                    min_cell=min_cell,
                )
            )
        sections.append({"key": key, "title": title, "groups": groups, "plots": plots})
    return sections


@blp.get("/cohort-report")
@clinician_page
def my_cohort_report(*, principal: Principal) -> Any:
    teams = clinician_team_ids(db(), principal.user_id)
    if not teams:
        return page_not_found()
    return redirect(url_for("webui.cohort_report_page", team_id=sorted(teams)[0]))


@blp.get("/teams/<team_id>/cohort-report")
@clinician_page
def cohort_report_page(team_id: str, *, principal: Principal) -> Any:
    s = db()
    report = team_report(
        s,
        principal=principal,
        team_id=team_id,
        min_cell=settings().report_min_cell_size,
        now=utcnow(),
        detail="web",
    )
    s.commit()
    return render_template("cohort_report.html", r=report, sections=report_sections(report))
