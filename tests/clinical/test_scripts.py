"""The cohort CLI and the validation script's external-cohort path."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import simulate_cohort  # noqa: E402

from backend.clinical import detection_report as validate_detection  # noqa: E402


def test_cohort_csv_round_trips_through_the_validation(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    assert (
        simulate_cohort.main(
            [
                "--patients",
                "6",
                "--days",
                "260",
                "--true-slope",
                "-300",
                "--treatment-start-p",
                "0",
                "--acute-drop-p",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with (out / "readings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"patient_id", "measured_at", "fev1_l", "grade", "setting"} <= set(rows[0])
    assert {r["setting"] for r in rows} == {"home", "clinic"}
    with (out / "truth.csv").open() as fh:
        truth = list(csv.DictReader(fh))
    assert len(truth) == 6 and all(t["drop_start"] for t in truth)
    text = validate_detection.run_external(
        out / "readings.csv", out / "truth.csv", validate_detection.DEFAULT_THRESHOLDS
    )
    assert "External cohort readings.csv: 6 patients" in text
    assert "| <= -144 | 6 |" in text
    assert "Acute drops detected within 3 days" in text


def test_cohort_json(tmp_path: Path) -> None:
    assert (
        simulate_cohort.main(["--patients", "2", "--days", "60", "--format", "json", "--out", str(tmp_path)])
        == 0
    )
    assert (tmp_path / "cohort.json").stat().st_size > 1000


@pytest.mark.slow
def test_quick_validation_runs(tmp_path: Path) -> None:
    md = tmp_path / "v.md"
    assert validate_detection.main(["--quick", "--workers", "1", "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "Rapid decline" in text
    assert "one-look limit 12 mo" in text
    assert "Home-data artefacts" in text


def test_one_look_limit_matches_the_design_arithmetic() -> None:
    # SD 150 mL, AR(1) 0.3, 5 of 7 days, least squares, 5 % false alarms at -30 mL/yr
    assert validate_detection.one_look_limit(-30.0, 150.0, 5.0, 0.3, 12) == pytest.approx(0.05, abs=1e-9)
    at12 = validate_detection.one_look_limit(-144.0, 150.0, 5.0, 0.3, 12)
    assert 0.78 <= at12 <= 0.9
    assert validate_detection.one_look_limit(-144.0, 150.0, 5.0, 0.4, 12) < at12
    assert validate_detection.one_look_limit(-144.0, 150.0, 5.0, 0.3, 18) > 0.97
    assert validate_detection.one_look_limit(-144.0, 150.0, 1.0, 0.3, 12) < at12
