"""Write a synthetic LAM cohort (backend.clinical.simulation) as CSV or JSON.

  python scripts/simulate_cohort.py --patients 200 --days 730 --out cohort/ [--format csv|json]

CSV output is three files in --out:
  readings.csv  patient_id, measured_at, fev1_l, fvc_l, grade, setting, device_id
                (the input format of scripts/validate_detection.py --cohort)
  truth.csv     patient_id, true_slope_ml_per_year, on_treatment_slope_ml_per_year,
                treatment_start, drop_start, drop_end
  events.csv    patient_id, kind, at, value, detail (regimens, doses, troughs,
                side effects, LAM events)
JSON output is one cohort.json with the same content per patient.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.clinical.simulation import (
    CohortConfig,
    SimulatedPatient,
    simulate_cohort,
)


def _day(cfg: CohortConfig, d: int | None) -> str:
    return "" if d is None else (cfg.start + timedelta(days=d)).isoformat()


def truth_row(cfg: CohortConfig, p: SimulatedPatient) -> dict[str, Any]:
    t = p.truth
    drop = t.drops[0] if t.drops else None
    return {
        "patient_id": t.patient_id,
        "true_slope_ml_per_year": round(t.true_slope_ml_per_year, 1),
        "on_treatment_slope_ml_per_year": (
            "" if t.on_treatment_slope_ml_per_year is None else round(t.on_treatment_slope_ml_per_year, 1)
        ),
        "treatment_start": _day(cfg, t.treatment_start_day),
        "drop_start": _day(cfg, drop[0] if drop else None),
        "drop_end": _day(cfg, drop[1] if drop else None),
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, (datetime, date)):
        return x.isoformat()
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write_csv(cfg: CohortConfig, cohort: Sequence[SimulatedPatient], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "readings.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "measured_at", "fev1_l", "fvc_l", "grade", "setting", "device_id"])
        for p in cohort:
            for r in p.history.readings:
                w.writerow(
                    [
                        p.truth.patient_id,
                        r.measured_at.isoformat(),
                        r.fev1_l,
                        r.fvc_l if r.fvc_l is not None else "",
                        r.grade or "",
                        r.setting,
                        r.device_id or "",
                    ]
                )
    with (out / "truth.csv").open("w", newline="") as fh:
        rows = [truth_row(cfg, p) for p in cohort]
        dw = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["patient_id"])
        dw.writeheader()
        dw.writerows(rows)
    with (out / "events.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "kind", "at", "value", "detail"])
        for p in cohort:
            h = p.history
            pid = p.truth.patient_id
            for g in h.regimens:
                w.writerow(
                    [
                        pid,
                        f"regimen:{g.kind}",
                        g.effective_at.isoformat(),
                        g.daily_dose_mg or "",
                        g.drug_name or "",
                    ]
                )
            for d in h.doses:
                w.writerow([pid, f"dose:{d.status}", d.taken_at.isoformat(), d.dose_mg or "", ""])
            for t in h.troughs:
                w.writerow(
                    [
                        pid,
                        "trough",
                        t.drawn_at.isoformat(),
                        t.value_ng_ml,
                        t.last_dose_at.isoformat() if t.last_dose_at else "",
                    ]
                )
            for s in h.side_effects:
                w.writerow(
                    [
                        pid,
                        f"side_effect:{s.term}",
                        s.onset_at.isoformat(),
                        s.severity,
                        json.dumps(
                            {"temperature_c": s.temperature_c, "antibiotics_started": s.antibiotics_started}
                        ),
                    ]
                )
            for e in h.events:
                w.writerow([pid, f"lam_event:{e.kind}", e.occurred_at.isoformat(), "", ""])


def write_json(cfg: CohortConfig, cohort: Sequence[SimulatedPatient], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "config": _jsonable({f.name: getattr(cfg, f.name) for f in fields(cfg)}),
        "patients": [
            {
                "truth": truth_row(cfg, p),
                "facts": _jsonable(asdict(p.history.facts)),
                "readings": [_jsonable(asdict(r)) for r in p.history.readings],
                "doses": [_jsonable(asdict(d)) for d in p.history.doses],
                "regimens": [_jsonable(asdict(g)) for g in p.history.regimens],
                "troughs": [_jsonable(asdict(t)) for t in p.history.troughs],
                "side_effects": [_jsonable(asdict(s)) for s in p.history.side_effects],
                "events": [_jsonable(asdict(e)) for e in p.history.events],
            }
            for p in cohort
        ],
    }
    (out / "cohort.json").write_text(json.dumps(doc, indent=1))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a synthetic LAM cohort.")
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=CohortConfig.seed)
    ap.add_argument("--start", type=date.fromisoformat, default=CohortConfig.start)
    ap.add_argument("--days-per-week", type=float, default=CohortConfig.days_per_week)
    ap.add_argument("--noise-sd-ml", type=float, default=CohortConfig.noise_sd_ml)
    ap.add_argument("--rho", type=float, default=CohortConfig.ar1_rho)
    ap.add_argument(
        "--true-slope",
        type=float,
        default=None,
        help="fixed true slope in mL/yr (default: registry distribution)",
    )
    ap.add_argument("--treatment-start-p", type=float, default=CohortConfig.treatment_start_p)
    ap.add_argument("--acute-drop-p", type=float, default=CohortConfig.acute_drop_p)
    ap.add_argument("--format", choices=("csv", "json"), default="csv")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    a = ap.parse_args(argv)
    cfg = CohortConfig(
        n_patients=a.patients,
        days=a.days,
        seed=a.seed,
        start=a.start,
        days_per_week=a.days_per_week,
        noise_sd_ml=a.noise_sd_ml,
        ar1_rho=a.rho,
        true_slope_ml_per_year=a.true_slope,
        treatment_start_p=a.treatment_start_p,
        acute_drop_p=a.acute_drop_p,
    )
    cohort = simulate_cohort(cfg)
    (write_csv if a.format == "csv" else write_json)(cfg, cohort, a.out)
    n = sum(len(p.history.readings) for p in cohort)
    print(f"wrote {len(cohort)} patients, {n} spirometry sessions to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
