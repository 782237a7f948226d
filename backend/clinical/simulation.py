"""Synthetic LAM cohort for demos, benchmarks and detection validation.

Pure numpy, seeded and reproducible: the same `CohortConfig` gives the same
cohort. Published figures behind the defaults (domain.md):
- untreated FEV1 slope 89 ± 53 mL/yr (NHLBI registry, Gupta et al., Chest 2019);
- MILES (NEJM 2011): -12 ± 2 mL/month on placebo (-144 mL/yr) vs +1 ± 2 mL/month
  on sirolimus (+12 mL/yr);
- Bee et al. (Thorax 2018): on sirolimus +11 (SD 75) mL/yr, range +254 to -148;
- within-person FEV1 SD 120-200 mL (150 typical), day-to-day AR(1) correlation;
- learning effect in the first weeks of home spirometry (INMARK);
- half-life 62 h, steady state ~13 days; troughs proportional to dose.

Home noise is a day-level AR(1) process (marginal SD `noise_sd_ml`, lag-1
correlation `ar1_rho`) plus a small within-day session noise; a fraction of
sessions are submaximal outliers (20-50 % low). Days with readings follow the
configured days per week, with adherence gaps of 1-3 weeks.

Each session also has a PEF and an FVC with physiologically honest effort
dependence (ATS/ERS 2019, Graham et al. AJRCCM 2019): PEF is set by the effort
at the start of the blow and is the most effort-dependent index; FEV1 is
relatively effort-independent; FVC falls when expiration is cut short. Every
effort loss of a session (effort drift, the learning period, submaximal and
poorly graded sessions) that lowers FEV1 by a factor e lowers PEF by
e ** `pef_effort_exponent` (3: a 5 % FEV1 loss is a ~14 % PEF loss) and FVC by
e ** `fvc_effort_exponent` (1.5). A true change in lung function moves PEF and
FVC in proportion to FEV1 (a per-patient PEF/FEV1 and FEV1/FVC). The
exponents are simulation assumptions, not published constants. PEF and FVC
draw on their own random stream, so FEV1 values do not depend on them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from backend.clinical.model import (
    DoseLog,
    LamEvent,
    PatientFacts,
    PatientHistory,
    RegimenEvent,
    SideEffectReport,
    SpirometryReading,
    TroughResult,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

UNTREATED_SLOPE_MEAN = -89.0  # Gupta et al., Chest 2019
UNTREATED_SLOPE_SD = 53.0
SIROLIMUS_SLOPE_MEAN = 11.0  # Bee et al., Thorax 2018
SIROLIMUS_SLOPE_SD = 75.0
MILES_PLACEBO_SLOPE = -144.0  # -12 mL/month
MILES_SIROLIMUS_SLOPE = 12.0  # +1 mL/month

TIMEZONES = (
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Europe/Berlin",
    "Asia/Tokyo",
    "America/Los_Angeles",
)
GRADES = np.array(["A", "B", "C", "D", "E", "U", "F"])
GRADE_P = np.array([0.70, 0.12, 0.08, 0.04, 0.03, 0.02, 0.01])


@dataclass(frozen=True)
class CohortConfig:
    n_patients: int = 100
    days: int = 730
    start: date = date(2024, 1, 1)
    seed: int = 20260101
    days_per_week: float = 5.0
    noise_sd_ml: float = 150.0
    ar1_rho: float = 0.3
    within_day_sd_ml: float = 50.0
    second_session_p: float = 0.15
    outlier_p: float = 0.02
    learning_effect_ml: float = 150.0
    learning_tau_days: float = 7.0
    gaps_per_year: float = 1.5
    graded_device_p: float = 0.3
    device_change_p: float = 0.2
    device_offset_sd_ml: float = 80.0
    # true slope: fixed value, or drawn from the untreated registry distribution
    true_slope_ml_per_year: float | None = None
    # fraction starting sirolimus during follow-up (day 90 to 60 % of the period)
    treatment_start_p: float = 0.4
    on_treatment_slope_ml_per_year: float | None = None
    # acute drops: probability per patient, fractional size, duration in days
    acute_drop_p: float = 0.0
    # home-data artefacts (VALIDATION.md, robustness): ungraded effort worsening
    # steadily (mL/yr, negative = readings drift down), infection dips (true
    # drops that recover), a replacement device reading `replacement_step_ml`
    # differently from `replacement_day`, with or without a new device id
    effort_drift_ml_per_year: float = 0.0
    # effort dependence of PEF and FVC (module docstring), their technique noise
    # (CV, day-level AR(1) with `ar1_rho`), per-patient PEF/FEV1 (L/s per L) and
    # FEV1/FVC, per-device PEF calibration (CV), share of patients whose device sends PEF
    pef_effort_exponent: float = 3.0
    fvc_effort_exponent: float = 1.5
    pef_noise_cv: float = 0.06
    fvc_noise_cv: float = 0.03
    pef_per_fev1_mean: float = 2.4
    pef_per_fev1_sd: float = 0.3
    fev1_fvc_mean: float = 0.68
    fev1_fvc_sd: float = 0.06
    pef_device_cv: float = 0.04
    pef_reported_p: float = 1.0
    infection_dips_per_year: float = 0.0
    infection_dip_fraction: float = 0.15
    infection_recovery_days: int = 21
    replacement_step_ml: float = 0.0
    replacement_day: int = 300
    replacement_new_serial: bool = False
    acute_drop_fraction: float = 0.15
    acute_drop_days: tuple[int, int] = (3, 7)
    clinic_every_days: int = 91
    clinic_noise_sd_ml: float = 120.0
    dose_miss_p: float = 0.04
    side_effects_per_year: float = 3.0


@dataclass(frozen=True, slots=True)
class PatientTruth:
    patient_id: str
    true_slope_ml_per_year: float  # before treatment (or whole period if untreated)
    on_treatment_slope_ml_per_year: float | None
    treatment_start_day: int | None  # day index from cohort start
    baseline_fev1_l: float
    drops: tuple[tuple[int, int, float], ...]  # (first day, last day, fraction)


@dataclass(frozen=True, slots=True)
class Fev1Arrays:
    """Home sessions of one patient as arrays (fast path for validation)."""

    day: IntArray  # day index from cohort start (local calendar days)
    fev1_l: FloatArray
    grade: npt.NDArray[np.str_]  # '' when ungraded
    device: IntArray
    clinic_day: IntArray
    clinic_fev1_l: FloatArray
    pef_l_s: FloatArray | None = None  # None: her device sends no PEF
    fvc_l: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class SimulatedPatient:
    history: PatientHistory
    truth: PatientTruth
    arrays: Fev1Arrays = field(repr=False)


def _ar1(rng: np.random.Generator, n: int, sd: float, rho: float) -> FloatArray:
    """Stationary AR(1) series of length n with marginal SD `sd` (scipy lfilter)."""
    z = rng.normal(0.0, sd * np.sqrt(1.0 - rho * rho), n)
    z[0] = rng.normal(0.0, sd)
    if rho == 0.0:
        return z
    out: FloatArray = lfilter([1.0], [1.0, -rho], z)
    return out


def _reading_days(rng: np.random.Generator, cfg: CohortConfig) -> IntArray:
    keep = rng.random(cfg.days) < cfg.days_per_week / 7.0
    n_gaps = rng.poisson(cfg.gaps_per_year * cfg.days / 365.25)
    for _ in range(n_gaps):
        g0 = int(rng.integers(30, max(31, cfg.days)))
        keep[g0 : g0 + int(rng.integers(7, 22))] = False
    keep[0] = True  # the first session marks the start of home monitoring
    return np.flatnonzero(keep).astype(np.int64)


def simulate_fev1(
    rng: np.random.Generator, cfg: CohortConfig, patient_id: str
) -> tuple[Fev1Arrays, PatientTruth]:
    """True course plus home and clinic measurements for one patient."""
    if cfg.true_slope_ml_per_year is None:
        slope = float(rng.normal(UNTREATED_SLOPE_MEAN, UNTREATED_SLOPE_SD))
    else:
        slope = cfg.true_slope_ml_per_year
    start_day: int | None = None
    on_slope: float | None = None
    if rng.random() < cfg.treatment_start_p and cfg.days > 150:
        start_day = int(rng.integers(90, max(91, int(0.6 * cfg.days))))
        on_slope = (
            float(rng.normal(SIROLIMUS_SLOPE_MEAN, SIROLIMUS_SLOPE_SD))
            if cfg.on_treatment_slope_ml_per_year is None
            else cfg.on_treatment_slope_ml_per_year
        )
    base = float(np.clip(rng.normal(2.2, 0.5), 0.9, 3.6))
    all_days = np.arange(cfg.days, dtype=np.float64)
    years = all_days / 365.25
    truth = base + slope / 1000.0 * years
    if start_day is not None and on_slope is not None:
        after = all_days >= start_day
        truth[after] = (
            base
            + slope / 1000.0 * start_day / 365.25
            + on_slope / 1000.0 * (all_days[after] - start_day) / 365.25
        )
    drops: list[tuple[int, int, float]] = []
    if cfg.acute_drop_p > 0 and rng.random() < cfg.acute_drop_p and cfg.days > 90:
        d0 = int(rng.integers(60, cfg.days - 10))
        length = int(rng.integers(cfg.acute_drop_days[0], cfg.acute_drop_days[1] + 1))
        d1 = min(cfg.days - 1, d0 + length - 1)
        truth[d0 : d1 + 1] *= 1.0 - cfg.acute_drop_fraction
        drops.append((d0, d1, cfg.acute_drop_fraction))
    if cfg.infection_dips_per_year > 0:
        n_dips = int(rng.poisson(cfg.infection_dips_per_year * cfg.days / 365.25))
        for d0 in rng.integers(30, max(31, cfg.days - 1), n_dips):
            rec = np.arange(cfg.days - int(d0))
            shape = np.clip(1.0 - rec / cfg.infection_recovery_days, 0.0, 1.0)
            truth[int(d0) :] *= 1.0 - cfg.infection_dip_fraction * shape
    noise = _ar1(rng, cfg.days, cfg.noise_sd_ml / 1000.0, cfg.ar1_rho)
    learning = cfg.learning_effect_ml / 1000.0 * np.exp(-all_days / cfg.learning_tau_days)
    drift = cfg.effort_drift_ml_per_year / 1000.0 * years
    daily = truth + noise - learning + drift
    # effort factor of each day (FEV1 with / without the effort loss)
    effort_daily = np.clip(1.0 - learning / truth, 0.2, 1.0) * np.clip(1.0 + drift / truth, 0.2, 1.5)
    days = _reading_days(rng, cfg)
    extra = days[rng.random(days.size) < cfg.second_session_p]
    sess_day = np.sort(np.concatenate((days, extra)))
    values = daily[sess_day] + rng.normal(0.0, cfg.within_day_sd_ml / 1000.0, sess_day.size)
    effort = effort_daily[sess_day]
    outlier = rng.random(sess_day.size) < cfg.outlier_p
    u = rng.uniform(0.5, 0.8, int(outlier.sum()))
    values[outlier] *= u
    effort[outlier] *= u
    device = np.zeros(sess_day.size, np.int64)
    if rng.random() < cfg.device_change_p:
        change = int(rng.integers(60, max(61, cfg.days - 60)))
        device[sess_day >= change] = 1
        values[sess_day >= change] += rng.normal(0.0, cfg.device_offset_sd_ml / 1000.0)
    if cfg.replacement_step_ml != 0.0:
        after_r = sess_day >= cfg.replacement_day
        values[after_r] += cfg.replacement_step_ml / 1000.0
        if cfg.replacement_new_serial:
            device[after_r] = int(device.max()) + 1
    if rng.random() < cfg.graded_device_p:
        grade = rng.choice(GRADES, size=sess_day.size, p=GRADE_P)
        poor = np.isin(grade, ["D", "E", "U", "F"])
        loss = rng.uniform(0.0, 0.3, int(poor.sum()))
        effort[poor] *= np.clip(1.0 - loss / np.maximum(values[poor], 0.2), 0.2, 1.0)
        values[poor] -= loss
    else:
        grade = np.full(sess_day.size, "", dtype="<U1")
    values = np.asarray(np.round(np.maximum(values, 0.2), 3), dtype=np.float64)
    pef, fvc = _pef_fvc(cfg, patient_id, sess_day, values, effort, device)
    clinic_day = np.arange(0, cfg.days, cfg.clinic_every_days, dtype=np.int64)
    clinic = np.round(
        truth[clinic_day] + rng.normal(0.0, cfg.clinic_noise_sd_ml / 1000.0, clinic_day.size), 3
    )
    arrays = Fev1Arrays(sess_day.astype(np.int64), values, grade, device, clinic_day, clinic, pef, fvc)
    return arrays, PatientTruth(patient_id, slope, on_slope, start_day, base, tuple(drops))


def _pef_fvc(
    cfg: CohortConfig,
    patient_id: str,
    sess_day: IntArray,
    fev1: FloatArray,
    effort: FloatArray,
    device: IntArray,
) -> tuple[FloatArray | None, FloatArray]:
    """PEF and FVC of each session from its FEV1 and effort factor (module docstring)."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(patient_id.encode()), 2019])
    ratio = float(np.clip(rng.normal(cfg.pef_per_fev1_mean, cfg.pef_per_fev1_sd), 1.2, 4.0))
    fev1_fvc = float(np.clip(rng.normal(cfg.fev1_fvc_mean, cfg.fev1_fvc_sd), 0.4, 0.9))
    days = int(sess_day.max()) + 1 if sess_day.size else 1
    pef_tech = _ar1(rng, days, cfg.pef_noise_cv, cfg.ar1_rho)[sess_day]
    pef_tech += rng.normal(0.0, 0.5 * cfg.pef_noise_cv, sess_day.size)  # within-day
    cal = rng.normal(0.0, cfg.pef_device_cv, int(device.max()) + 1 if device.size else 1)
    e = np.clip(effort, 0.05, 1.5)
    pef = ratio * fev1 * e ** (cfg.pef_effort_exponent - 1.0) * np.exp(pef_tech + cal[device])
    fvc = (
        fev1
        / fev1_fvc
        * e ** (cfg.fvc_effort_exponent - 1.0)
        * np.exp(rng.normal(0.0, cfg.fvc_noise_cv, sess_day.size))
    )
    fvc = np.maximum(fvc, fev1)
    sends_pef = rng.random() < cfg.pef_reported_p
    return (np.round(pef, 2) if sends_pef else None), np.round(fvc, 3)


def simulate_fev1_cohort(cfg: CohortConfig) -> list[tuple[Fev1Arrays, PatientTruth]]:
    """FEV1 only, as arrays: the fast path for validation and benchmarks."""
    root = np.random.SeedSequence(cfg.seed)
    out = []
    for i, child in enumerate(root.spawn(cfg.n_patients)):
        rng = np.random.default_rng(child)
        out.append(simulate_fev1(rng, cfg, f"sim-{cfg.seed}-{i:05d}"))
    return out


def _at(cfg: CohortConfig, zone: ZoneInfo, day: int, hour: float) -> datetime:
    d = cfg.start + timedelta(days=int(day))
    h = int(hour)
    m = round((hour - h) * 60) % 60
    return datetime.combine(d, time(h % 24, m), tzinfo=zone)


def simulate_patient(rng: np.random.Generator, cfg: CohortConfig, index: int) -> SimulatedPatient:
    """One full patient: readings, treatment, doses, troughs, side effects."""
    pid = f"sim-{cfg.seed}-{index:05d}"
    arrays, truth = simulate_fev1(rng, cfg, pid)
    tz = str(rng.choice(TIMEZONES))
    zone = ZoneInfo(tz)
    age = float(rng.uniform(28, 60))
    dob = cfg.start - timedelta(days=int(age * 365.25))
    height = float(np.clip(rng.normal(163, 7), 145, 185))
    hours = rng.uniform(7.0, 21.0, arrays.day.size)
    devices = [f"{pid}-dev{k}" for k in range(int(arrays.device.max(initial=0)) + 1)]
    fvc_all = arrays.fvc_l if arrays.fvc_l is not None else arrays.fev1_l / 0.72
    readings = [
        SpirometryReading(
            id=f"{pid}-r{k}",
            measured_at=_at(cfg, zone, int(d), float(h)),
            fev1_l=float(v),
            fvc_l=float(fvc),
            grade=str(g) or None,
            setting="home",
            device_id=devices[int(dev)],
            pef_l_s=None if arrays.pef_l_s is None else float(arrays.pef_l_s[k]),
        )
        for k, (d, v, g, dev, h, fvc) in enumerate(
            zip(arrays.day, arrays.fev1_l, arrays.grade, arrays.device, hours, fvc_all, strict=True)
        )
    ]
    readings += [
        SpirometryReading(
            f"{pid}-c{k}",
            _at(cfg, zone, int(d), 10.5),
            float(v),
            round(float(v) / 0.72, 3),
            "A",
            "clinic",
            None,
        )
        for k, (d, v) in enumerate(zip(arrays.clinic_day, arrays.clinic_fev1_l, strict=True))
    ]
    regimens: list[RegimenEvent] = []
    troughs: list[TroughResult] = []
    doses: list[DoseLog] = []
    status = "untreated"
    if truth.treatment_start_day is not None:
        status = "on_sirolimus"
        s = truth.treatment_start_day
        dose = 2.0
        k_level = float(rng.lognormal(np.log(4.0), 0.35))  # ng/mL per mg/day
        regimens.append(RegimenEvent(f"{pid}-g0", _at(cfg, zone, s, 8.0), "start", dose, "sirolimus"))
        anchor = s
        day = s
        n_changes = 0
        # trough draws: first around day 14, then after each change, then every ~90 days
        while True:
            wait = int(rng.integers(10, 21)) if day == anchor else int(rng.integers(80, 100))
            draw = day + wait
            if draw >= cfg.days:
                break
            if rng.random() < 0.1:  # a missed draw: next one a month later
                draw += 30
                if draw >= cfg.days:
                    break
            before_ss = draw - anchor < 13
            level = dose * k_level * (0.7 if before_ss else 1.0) * float(rng.lognormal(0, 0.2))
            hours_after = float(np.clip(rng.normal(24, 2.5), 12, 36))
            drawn_at = _at(cfg, zone, draw, 8.0)
            troughs.append(
                TroughResult(
                    f"{pid}-t{len(troughs)}",
                    drawn_at,
                    round(level, 1),
                    drawn_at - timedelta(hours=hours_after),
                )
            )
            day = draw
            if (level < 5 or level > 15) and n_changes < 3 and not before_ss:
                dose = max(0.5, round(dose * 10.0 / level * 2) / 2)
                change = draw + 2
                if change < cfg.days:
                    regimens.append(
                        RegimenEvent(
                            f"{pid}-g{len(regimens)}",
                            _at(cfg, zone, change, 8.0),
                            "dose_change",
                            dose,
                            "sirolimus",
                        )
                    )
                    anchor = day = change
                    n_changes += 1
        dose_days = np.arange(s, cfg.days)
        missed = rng.random(dose_days.size) < cfg.dose_miss_p
        doses = [
            DoseLog(
                f"{pid}-d{int(d)}",
                _at(cfg, zone, int(d), 8.0),
                "missed" if m else "taken",
                None if m else 2.0,
            )
            for d, m in zip(dose_days, missed, strict=True)
        ]
    side_effects: list[SideEffectReport] = []
    if truth.treatment_start_day is not None:
        n_se = rng.poisson(cfg.side_effects_per_year * (cfg.days - truth.treatment_start_day) / 365.25)
        terms = (
            "mucositis_oral",
            "rash_acneiform",
            "diarrhea",
            "edema_limbs",
            "cough",
            "upper_respiratory_infection",
        )
        for k in range(int(n_se)):
            d = int(rng.integers(truth.treatment_start_day, cfg.days))
            sev = str(rng.choice(["mild", "moderate", "severe"], p=[0.6, 0.3, 0.1]))
            temp = round(float(rng.normal(37.0, 0.6)), 1) if rng.random() < 0.3 else None
            side_effects.append(
                SideEffectReport(
                    f"{pid}-s{k}",
                    _at(cfg, zone, d, 19.0),
                    str(rng.choice(terms)),
                    sev,
                    None,
                    temp,
                    bool(rng.random() < 0.05),
                )
            )
    events: list[LamEvent] = []
    if rng.random() < 0.03 * cfg.days / 365.25:
        events.append(
            LamEvent(f"{pid}-e0", _at(cfg, zone, int(rng.integers(0, cfg.days)), 3.0), "pneumothorax")
        )
    facts = PatientFacts(
        patient_id=pid,
        sex_at_birth="female",
        date_of_birth=dob,
        height_cm=round(height, 1),
        lam_type=str(rng.choice(["sporadic", "tsc"], p=[0.85, 0.15])),
        timezone=tz,
        treatment_status=status,
        trough_target_low=None,
        trough_target_high=None,
        expected_sessions_per_week=round(cfg.days_per_week),
    )
    history = PatientHistory(
        facts,
        tuple(readings),
        tuple(doses),
        tuple(regimens),
        tuple(troughs),
        tuple(side_effects),
        tuple(events),
    )
    return SimulatedPatient(history, truth, arrays)


def simulate_cohort(cfg: CohortConfig | None = None, **overrides: object) -> list[SimulatedPatient]:
    """A reproducible cohort of full patient histories."""
    cfg = cfg or CohortConfig()
    if overrides:
        cfg = replace(cfg, **overrides)  # type: ignore[arg-type]
    root = np.random.SeedSequence(cfg.seed)
    return [
        simulate_patient(np.random.default_rng(child), cfg, i)
        for i, child in enumerate(root.spawn(cfg.n_patients))
    ]
