"""Server-rendered SVG charts of the patient page (no script; readable printed).

Every element carries a class that the stylesheet colours and the browser test
looks for; values are escaped, and nothing here computes clinical numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

W, H = 900, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36


class _Scale:
    def __init__(self, start: date, end: date, lo: float, hi: float) -> None:
        self.d0 = start.toordinal()
        self.d1 = max(end.toordinal(), self.d0 + 1)
        self.lo, self.hi = lo, hi if hi > lo else lo + 1.0

    def x(self, day: date | int) -> float:
        d = day if isinstance(day, int) else day.toordinal()
        return LEFT + (d - self.d0) / (self.d1 - self.d0) * (W - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return TOP + (self.hi - value) / (self.hi - self.lo) * (H - TOP - BOTTOM)


def _svg(title: str, body: list[str], label: str) -> Markup:
    return Markup(  # noqa: S704 (every value below is a number or escaped)
        f'<svg class="chart {label}" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{label}-title" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{label}-title">{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _axes(sc: _Scale, unit: str, step: float) -> list[str]:
    out = [
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}"/>'
    ]
    v = step * int(sc.lo / step)
    while v <= sc.hi + 1e-9:
        if v >= sc.lo:
            y = sc.y(v)
            out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    out.append(f'<text class="unit" x="8" y="{TOP + 10}">{escape(unit)}</text>')
    first = date.fromordinal(sc.d0)
    month = date(first.year, first.month, 1)
    n = 0
    while month.toordinal() <= sc.d1:
        if month.toordinal() >= sc.d0 and (month.month - 1) % 3 == 0:
            x = sc.x(month)
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{H - 12}" text-anchor="middle">{month:%b %Y}</text>'
            )
            out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}"/>')
        month = (month + timedelta(days=32)).replace(day=1)
        n += 1
    return out


def _hline(sc: _Scale, value: float, cls: str, text: str) -> list[str]:
    y = sc.y(value)
    return [
        f'<line class="{cls}" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>',
        f'<text class="label {cls}-label" x="{W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end">'
        f"{escape(text)}</text>",
    ]


def fev1_chart(
    *,
    daily: Sequence[tuple[int, float]],
    clinic: Sequence[tuple[date, float]],
    lines: Sequence[dict[str, Any]],
    pct70: float | None,
    lln: float | None,
    regimens: Sequence[tuple[date, str, float | None]],
    start: date,
    end: date,
) -> Markup:
    values = [v for _, v in daily] + [v for _, v in clinic] + [x for x in (pct70, lln) if x is not None]
    lo = (min(values) if values else 1.0) - 0.2
    hi = (max(values) if values else 3.0) + 0.2
    sc = _Scale(start, end, max(0.0, lo), hi)
    body = _axes(sc, "FEV1 (L)", 0.5 if hi - lo > 1.5 else 0.25)
    if pct70 is not None:
        body += _hline(sc, pct70, "pct70", f"70 % predicted ({pct70:.2f} L)")
    if lln is not None:
        body += _hline(sc, lln, "lln", f"LLN ({lln:.2f} L)")
    for day, kind, dose in regimens:
        if day.toordinal() < sc.d0:
            continue
        x = sc.x(day)
        text = kind.replace("_", " ") + (f" {dose:g} mg" if dose is not None else "")
        body.append(f'<line class="regimen" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}"/>')
        body.append(f'<text class="label regimen-label" x="{x + 3:.1f}" y="{TOP + 12}">{escape(text)}</text>')
    if daily:
        line = " ".join(f"{sc.x(d):.1f},{sc.y(v):.1f}" for d, v in daily if d >= sc.d0)
        body.append(f'<polyline class="home" points="{line}"/>')
    for ln in lines:
        d0, d1 = max(ln["start"].toordinal(), sc.d0), ln["end"].toordinal()
        if d1 <= d0:
            continue
        mid = (d0 + d1) / 2.0
        # level at the last reading of the fit (intercept), carried to the middle of the segment
        level_mid = ln["level_l"] - ln["slope"] / 1000.0 * (d1 - mid) / 365.25

        def at(day: float, slope: float, level_mid: float = level_mid, mid: float = mid) -> float:
            return level_mid + slope / 1000.0 * (day - mid) / 365.25

        band = [
            (d0, at(d0, ln["ci_high"])),
            (d1, at(d1, ln["ci_low"])),
        ]
        pts_hi = (
            f"{sc.x(d0):.1f},{sc.y(at(d0, ln['ci_low'])):.1f} {sc.x(int(mid)):.1f},{sc.y(level_mid):.1f} "
        )
        pts_hi += f"{sc.x(d1):.1f},{sc.y(at(d1, ln['ci_high'])):.1f} {sc.x(d1):.1f},{sc.y(band[1][1]):.1f} "
        pts_hi += f"{sc.x(int(mid)):.1f},{sc.y(level_mid):.1f} {sc.x(d0):.1f},{sc.y(band[0][1]):.1f}"
        cls = "on" if ln["label"] != "before_treatment" else "before"
        body.append(f'<polygon class="trend-band trend-band-{cls}" points="{pts_hi}"/>')
        body.append(
            f'<line class="trend trend-{cls}" x1="{sc.x(d0):.1f}" y1="{sc.y(at(d0, ln["slope"])):.1f}" '
            f'x2="{sc.x(d1):.1f}" y2="{sc.y(at(d1, ln["slope"])):.1f}">'
            f"<title>{escape(ln['label'].replace('_', ' '))}: "
            f"{ln['slope']:+.0f} mL/year ({ln['ci_low']:+.0f} to {ln['ci_high']:+.0f})</title></line>"
        )
    for day, value in clinic:
        if day.toordinal() >= sc.d0:
            body.append(
                f'<rect class="clinic" x="{sc.x(day) - 4:.1f}" y="{sc.y(value) - 4:.1f}" '
                'width="8" height="8">'
                f"<title>clinic {day.isoformat()}: {value:.2f} L</title></rect>"
            )
    return _svg("FEV1: home daily values, clinic values and the trend", body, "fev1-chart")


def trough_chart(
    *,
    troughs: Sequence[tuple[date, float, bool, bool]],
    low: float,
    high: float,
    doses: Sequence[tuple[date, float]],
    end: date,
) -> Markup:
    days = [d for d, *_ in troughs] + [d for d, _ in doses]
    start = min(days) - timedelta(days=14) if days else end - timedelta(days=365)
    values = [v for _, v, *_ in troughs] + [high]
    sc = _Scale(start, end, 0.0, max(values) * 1.15)
    body = _axes(sc, "ng/mL", 5.0)
    body.append(
        f'<rect class="target" x="{LEFT}" y="{sc.y(high):.1f}" width="{W - LEFT - RIGHT}" '
        f'height="{sc.y(low) - sc.y(high):.1f}"><title>target {low:g}–{high:g} ng/mL</title></rect>'
    )
    if doses:
        top = max(d for _, d in doses) or 1.0
        pts: list[str] = []
        for i, (day, dose) in enumerate(doses):
            y = sc.y(dose / top * sc.hi * 0.9)
            if i:
                pts.append(f"{sc.x(day):.1f},{float(pts[-1].split(',')[1]):.1f}")
            pts.append(f"{sc.x(day):.1f},{y:.1f}")
            body.append(
                f'<text class="label dose-label" x="{sc.x(day) + 3:.1f}" y="{y - 4:.1f}">{dose:g} mg</text>'
            )
        pts.append(f"{sc.x(end):.1f},{float(pts[-1].split(',')[1]):.1f}")
        body.append(f'<polyline class="dose-steps" points="{" ".join(pts)}"/>')
    for day, value, early, not_trough in troughs:
        flags = [t for t, on in (("before steady state", early), ("not a true trough", not_trough)) if on]
        cls = "trough" + (" flagged" if flags else "")
        tip = f"{day.isoformat()}: {value:g} ng/mL" + (f" ({', '.join(flags)})" if flags else "")
        x, y = sc.x(day), sc.y(value)
        body.append(
            f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="5"><title>{escape(tip)}</title></circle>'
        )
        if flags:
            mark = "".join(f[0].upper() for f in flags)  # B, N
            body.append(f'<text class="label flag" x="{x + 7:.1f}" y="{y + 4:.1f}">{escape(mark)}</text>')
    return _svg("Sirolimus trough levels, target band and dose steps", body, "trough-chart")


# The legend beside each chart: every entry drawn with the chart's own mark (the
# same element and class, so the stylesheet colours both alike and a printed
# page keeps them matched).
_MARKS: dict[str, str] = {
    "home": '<line class="home" x1="1" y1="6" x2="23" y2="6"/>',
    "clinic": '<rect class="clinic" x="8" y="2" width="8" height="8"/>',
    "trend-before": '<line class="trend trend-before" x1="1" y1="6" x2="23" y2="6"/>',
    "trend-on": '<line class="trend trend-on" x1="1" y1="6" x2="23" y2="6"/>',
    "trend-band": (
        '<rect class="trend-band trend-band-before" x="0" y="1" width="12" height="10"/>'
        '<rect class="trend-band trend-band-on" x="12" y="1" width="12" height="10"/>'
    ),
    "pct70": '<line class="pct70" x1="1" y1="6" x2="23" y2="6"/>',
    "lln": '<line class="lln" x1="1" y1="6" x2="23" y2="6"/>',
    "regimen": '<line class="regimen" x1="12" y1="0" x2="12" y2="12"/>',
    "target": '<rect class="target" x="0" y="1" width="24" height="10"/>',
    "trough": '<circle class="trough" cx="12" cy="6" r="4.5"/>',
    "flagged": '<circle class="trough flagged" cx="12" cy="6" r="4"/>',
    "dose-steps": '<polyline class="dose-steps" points="1,10 9,10 9,3 23,3"/>',
}

FEV1_LEGEND = (
    ("home", "home daily value"),
    ("clinic", "clinic"),
    ("trend-before", "trend before treatment"),
    ("trend-on", "trend on treatment"),
    ("trend-band", "trend interval (shaded)"),
    ("pct70", "70 % predicted"),
    ("lln", "LLN"),
    ("regimen", "regimen change"),
)
TROUGH_LEGEND = (
    ("target", "target band"),
    ("trough", "trough"),
    ("flagged", "flagged: B before steady state, N not a true trough"),
    ("dose-steps", "daily dose steps"),
)


def legend(entries: Sequence[tuple[str, str]]) -> Markup:
    keys = "".join(
        f'<span class="key {key}"><svg class="swatch" viewBox="0 0 24 12" width="24" height="12" '
        f'aria-hidden="true" xmlns="http://www.w3.org/2000/svg">{_MARKS[key]}</svg>{escape(text)}</span> '
        for key, text in entries
    )
    return Markup(f'<p class="legend">{keys.rstrip()}</p>')  # noqa: S704 (fixed marks, escaped text)
