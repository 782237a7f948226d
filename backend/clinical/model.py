"""Plain data the clinical engine reads and writes.

Inputs are frozen dataclasses built by the services from database rows (or by the
simulator); outputs are frozen dataclasses the services store or turn into
alerts. All datetimes are timezone-aware; calendar days are taken in the
patient's own IANA time zone (`PatientFacts.timezone`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import overload

NumberLike = float | int | str | bool | None

SEVERITIES = ("urgent", "review", "digest")

RULE_IDS = (
    "rapid_fev1_decline",
    "acute_fev1_drop",
    "fev1_drop_with_symptoms",
    "treatment_start_criteria",
    # the FEV1-only start rule it replaced: alerts stored under it stay readable
    "fev1_below_start_criterion",
    "trough_draw_due",
    "trough_draw_missed",
    "trough_out_of_range",
    "interacting_drug_change",
    "urgent_side_effect",
    "lam_event",
    "readings_overdue",
    "repeated_missed_doses",
    "fev1_effort_drift",
    "fev1_level_drop",
)

# Former rule ids -> the rule that replaced them (filtering by either finds both).
RULE_ALIASES = {"fev1_below_start_criterion": "treatment_start_criteria"}


# --------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class PatientFacts:
    patient_id: str
    sex_at_birth: str  # 'female' | 'male'
    date_of_birth: date
    height_cm: float
    lam_type: str
    timezone: str  # IANA name, e.g. 'Europe/London'
    treatment_status: str  # catalog.TREATMENT_STATUSES
    trough_target_low: float | None = None
    trough_target_high: float | None = None
    expected_sessions_per_week: int = 7
    # Local date monitoring began (profile created): anchors the first draw of a
    # patient on sirolimus by profile with no logged start and no trough.
    monitoring_since: date | None = None
    menopausal_status: str | None = None  # 'premenopausal' | 'postmenopausal' | 'unknown'
    # Clinical profile kept by the care team (treatment start criteria).
    diagnosis_date: date | None = None
    dlco_ml_min_mmhg: float | None = None
    dlco_percent_predicted: float | None = None
    dlco_measured_on: date | None = None
    aml_largest_cm: float | None = None  # largest renal angiomyolipoma diameter
    aml_imaging_date: date | None = None
    chylous_effusion: str = "absent"  # 'absent' | 'pleural' | 'ascites' | 'both'
    chylous_effusion_symptomatic: bool = False
    chylous_effusion_date: date | None = None


@dataclass(frozen=True, slots=True)
class SpirometryReading:
    id: str
    measured_at: datetime
    fev1_l: float
    fvc_l: float | None = None
    grade: str | None = None  # ATS/ERS 2019 session grade; None when no blows were sent
    setting: str = "home"  # 'home' | 'clinic'
    device_id: str | None = None
    # peak expiratory flow of the same session: the most effort-dependent index
    # (ATS/ERS 2019), used to tell worsening effort from falling FEV1
    pef_l_s: float | None = None


class PosixMoments(Sequence[datetime]):
    """Moments held as POSIX seconds (floats), each read as an aware UTC datetime.

    A loader that gets the seconds from the database keeps them as they are
    (the series code reads `seconds` directly) instead of one datetime per
    session. `datetime.fromtimestamp(s, UTC)` gives back the exact microsecond
    of a moment whose seconds are the correctly rounded `datetime.timestamp()`
    (within ~0.1 us for any time before the year 2200).
    """

    __slots__ = ("seconds",)

    def __init__(self, seconds: Sequence[float]) -> None:
        self.seconds = seconds

    def __len__(self) -> int:
        return len(self.seconds)

    @overload
    def __getitem__(self, index: int) -> datetime: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[datetime]: ...
    def __getitem__(self, index: int | slice) -> datetime | Sequence[datetime]:
        if isinstance(index, slice):
            return [datetime.fromtimestamp(s, UTC) for s in self.seconds[index]]
        return datetime.fromtimestamp(self.seconds[index], UTC)

    def __iter__(self) -> Iterator[datetime]:
        return (datetime.fromtimestamp(s, UTC) for s in self.seconds)

    def __repr__(self) -> str:
        return f"PosixMoments({list(self.seconds)!r})"


class ReadingTable(Sequence[SpirometryReading]):
    """Spirometry sessions held as columns (one list per field, in session order).

    A `Sequence[SpirometryReading]` like any other (an item is built when it is
    read), so every consumer of `PatientHistory.readings` sees the same
    sessions; the engine's series code reads the columns directly
    (`series.reading_columns`) instead of one object per session. The loader
    builds one per patient from the columns of its query's rows, its
    `measured_at` as `PosixMoments`.
    """

    __slots__ = ("device_id", "fev1_l", "fvc_l", "grade", "id", "measured_at", "pef_l_s", "setting")

    def __init__(
        self,
        id: Sequence[str],
        measured_at: Sequence[datetime],
        fev1_l: Sequence[float],
        fvc_l: Sequence[float | None],
        grade: Sequence[str | None],
        setting: Sequence[str],
        device_id: Sequence[str | None],
        pef_l_s: Sequence[float | None],
    ) -> None:
        n = len(id)
        columns = (measured_at, fev1_l, fvc_l, grade, setting, device_id, pef_l_s)
        if any(len(c) != n for c in columns):
            raise ValueError("columns of a reading table must have the same length")
        self.id = id
        self.measured_at = measured_at
        self.fev1_l = fev1_l
        self.fvc_l = fvc_l
        self.grade = grade
        self.setting = setting
        self.device_id = device_id
        self.pef_l_s = pef_l_s

    @classmethod
    def of(cls, readings: Iterable[SpirometryReading]) -> ReadingTable:
        """The table of reading objects (itself if it already is one)."""
        if isinstance(readings, ReadingTable):
            return readings
        rs = list(readings)
        return cls(
            [r.id for r in rs],
            [r.measured_at for r in rs],
            [r.fev1_l for r in rs],
            [r.fvc_l for r in rs],
            [r.grade for r in rs],
            [r.setting for r in rs],
            [r.device_id for r in rs],
            [r.pef_l_s for r in rs],
        )

    def __len__(self) -> int:
        return len(self.id)

    def _item(self, i: int) -> SpirometryReading:
        return SpirometryReading(
            id=self.id[i],
            measured_at=self.measured_at[i],
            fev1_l=self.fev1_l[i],
            fvc_l=self.fvc_l[i],
            grade=self.grade[i],
            setting=self.setting[i],
            device_id=self.device_id[i],
            pef_l_s=self.pef_l_s[i],
        )

    @overload
    def __getitem__(self, index: int) -> SpirometryReading: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[SpirometryReading]: ...
    def __getitem__(self, index: int | slice) -> SpirometryReading | Sequence[SpirometryReading]:
        if isinstance(index, slice):
            return [self._item(i) for i in range(len(self))[index]]
        n = len(self)
        if not -n <= index < n:
            raise IndexError("reading index out of range")
        return self._item(index % n if n else index)

    def __iter__(self) -> Iterator[SpirometryReading]:
        return (self._item(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ReadingTable({list(self)!r})"


@dataclass(frozen=True, slots=True)
class DoseLog:
    id: str
    taken_at: datetime
    status: str  # 'taken' | 'missed'
    dose_mg: float | None = None


@dataclass(frozen=True, slots=True)
class RegimenEvent:
    id: str
    effective_at: datetime
    kind: str  # catalog.REGIMEN_EVENT_KINDS
    daily_dose_mg: float | None = None
    drug_name: str | None = None


@dataclass(frozen=True, slots=True)
class TroughResult:
    id: str
    drawn_at: datetime
    value_ng_ml: float
    last_dose_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SideEffectReport:
    id: str
    onset_at: datetime
    term: str  # catalog.SIDE_EFFECT_TERMS code
    severity: str  # catalog.PRO_CTCAE_SEVERITY key
    ctcae_grade: int | None = None
    temperature_c: float | None = None
    antibiotics_started: bool = False
    sudden: bool = False  # the patient says it came on suddenly (possible pneumothorax)


@dataclass(frozen=True, slots=True)
class LamEvent:
    id: str
    occurred_at: datetime
    kind: str  # catalog.LAM_EVENT_KINDS


@dataclass(frozen=True, slots=True)
class PatientHistory:
    facts: PatientFacts
    readings: Sequence[SpirometryReading] = ()
    doses: Sequence[DoseLog] = ()
    regimens: Sequence[RegimenEvent] = ()
    troughs: Sequence[TroughResult] = ()
    side_effects: Sequence[SideEffectReport] = ()
    events: Sequence[LamEvent] = ()


# -------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class AlertCandidate:
    rule: str
    severity: str  # 'urgent' | 'review' | 'digest'
    episode_key: str  # stable for one ongoing episode: the de-duplication key
    numbers: dict[str, NumberLike]
    explanation: str  # for clinicians; never contains the patient's name
    patient_message: str | None = None


@dataclass(frozen=True, slots=True)
class SlopeEstimate:
    """A robust slope with an autocorrelation-honest confidence interval."""

    slope_ml_per_year: float
    ci_low: float
    ci_high: float
    se_ml_per_year: float
    intercept_l: float  # fitted FEV1 (L) at the last reading
    n_readings: int
    span_days: float
    lag1_autocorrelation: float
    effective_n: float
    residual_sd_ml: float
    n_outliers: int
    # level shifts found and segmented: (first day of the new level, step in mL)
    level_shifts: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class EffortDrift:
    """Slope of ln(PEF / FEV1) over the trend window: a sign of worsening effort.

    PEF depends on effort far more than FEV1 (ATS/ERS 2019), so a submaximal
    blow lowers PEF relative to FEV1; a true loss of lung function lowers both.
    Slopes are in % per year (100 x the change of the natural log per year).
    """

    slope_pct_per_year: float
    ci_low: float
    ci_high: float
    n_days: int  # reading days with both PEF and FEV1
    span_days: float
    detected: bool


@dataclass(frozen=True, slots=True)
class TrendSegment:
    label: str  # 'before_treatment' | 'on_treatment' | 'off_treatment' | 'dose_<date>'
    start: date
    end: date
    slope_ml_per_year: float | None
    ci_low: float | None
    ci_high: float | None
    n_readings: int
    span_days: float
    verdict: str


@dataclass(frozen=True, slots=True)
class TrendResult:
    slope_ml_per_year: float | None
    ci_low: float | None
    ci_high: float | None
    slope_pct_pred_per_year: float | None
    n_readings: int
    span_days: float
    verdict: str  # 'insufficient_data' | 'improving' | 'stable' | 'declining' | 'rapid_decline'
    window_start: date | None = None
    window_end: date | None = None
    confidence: float = 0.95
    lag1_autocorrelation: float | None = None
    effective_n: float | None = None
    n_outliers: int = 0
    segments: tuple[TrendSegment, ...] = ()
    # on-treatment minus before-treatment slope, with its CI: "is the drug working?"
    treatment_effect_ml_per_year: float | None = None
    treatment_effect_ci_low: float | None = None
    treatment_effect_ci_high: float | None = None
    latest_clinic_fev1_l: float | None = None
    latest_clinic_at: datetime | None = None
    # the first `learning_days` of home readings are left out (learning effect):
    # readings before `learning_period_end` are not in the slope
    learning_days: int = 0
    learning_period_end: date | None = None
    # fitted FEV1 at the latest reading and its GLI Global % predicted
    current_level_l: float | None = None
    current_pct_predicted: float | None = None
    slope_pct_pred_ci_low: float | None = None
    slope_pct_pred_ci_high: float | None = None
    # level shifts (device replaced without a new serial, re-zeroed device, ...)
    # that were segmented out of the slope: (first date of the new level, step mL)
    level_shifts: tuple[tuple[date, float], ...] = ()
    # untreated natural decline expected for her menopausal status (NHLBI registry)
    menopausal_status: str | None = None
    expected_untreated_slope_ml_per_year: float | None = None
    # effort drift over the same window (PEF relative to FEV1, % per year), and
    # whether it stopped a rapid decline from being reported as a confident one
    effort_drift_pct_per_year: float | None = None
    effort_drift_ci_low: float | None = None
    effort_drift_ci_high: float | None = None
    effort_drift_n_days: int = 0
    effort_drift_detected: bool = False
    rapid_decline_withheld: bool = False
    effort_note: str | None = None


@dataclass(frozen=True, slots=True)
class TroughScheduleItem:
    reason: str  # 'start' | 'dose_change' | 'interacting_drug' | 'resume' | 'maintenance'
    anchor_date: date
    due_date: date
    window_start: date
    window_end: date
    missed_after: date  # 'missed' from the day after this date
    status: str  # 'upcoming' | 'due' | 'overdue' | 'missed' | 'done'
    done_by: str | None = None  # trough result id
    late: bool = False  # done by a draw after the window closed


@dataclass(frozen=True, slots=True)
class TroughFlags:
    hours_since_last_dose: float | None
    days_since_regimen_change: float | None
    not_true_trough: bool
    before_steady_state: bool
    # No last-dose time recorded or logged: whether it is a true trough is unknown.
    last_dose_unknown: bool = False


@dataclass(frozen=True, slots=True)
class Evaluation:
    patient_id: str
    as_of: datetime
    trend: TrendResult
    trough_schedule: tuple[TroughScheduleItem, ...]
    candidates: tuple[AlertCandidate, ...]
    notes: tuple[str, ...] = field(default=())
