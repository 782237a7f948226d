"""The one mapping from stored rows to the clinical engine's plain data
(`backend.clinical.model`): a patient's facts and her history up to a moment.

`load_histories` reads a chunk of patients with one ordinary query per data
stream; `load_history` is the same for one patient (trend route, tests)."""

from __future__ import annotations

import functools
import gc
import json
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from backend.clinical import model as cm
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.db import posix_seconds
from backend.patients.models import Patient
from backend.streams.events.models import LamEvent
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.troughs.models import TroughResult


def patient_facts(patient: Patient) -> cm.PatientFacts:
    return cm.PatientFacts(
        patient_id=patient.id,
        sex_at_birth=patient.sex_at_birth,
        date_of_birth=patient.date_of_birth,
        height_cm=patient.height_cm,
        lam_type=patient.lam_type,
        timezone=patient.timezone,
        treatment_status=patient.treatment_status,
        trough_target_low=patient.trough_target_low,
        trough_target_high=patient.trough_target_high,
        expected_sessions_per_week=patient.expected_sessions_per_week,
        monitoring_since=patient.created_at.astimezone(ZoneInfo(patient.timezone)).date(),
        menopausal_status=patient.menopausal_status,
        diagnosis_date=patient.diagnosis_date,
        dlco_ml_min_mmhg=patient.dlco_ml_min_mmhg,
        dlco_percent_predicted=patient.dlco_percent_predicted,
        dlco_measured_on=patient.dlco_measured_on,
        aml_largest_cm=patient.aml_largest_cm,
        aml_imaging_date=patient.aml_imaging_date,
        chylous_effusion=patient.chylous_effusion,
        chylous_effusion_symptomatic=patient.chylous_effusion_symptomatic,
        chylous_effusion_date=patient.chylous_effusion_date,
    )


# Each mapper takes a row of `_select(stream, ...)`: the patient id, then the
# stream's `columns` in order (read by position: cheaper than by name on
# hundreds of thousands of rows).


def _readings(rows: Sequence[Any]) -> cm.ReadingTable:
    """A patient's spirometry rows as one table of columns (no object per
    session; the times as the POSIX seconds the query read)."""
    if not rows:
        return cm.ReadingTable([], cm.PosixMoments([]), [], [], [], [], [], [])
    _, ids, seconds, fev1_l, fvc_l, fev1_grade, session_grade, setting, device, pef_l_s = zip(
        *rows, strict=True
    )
    texts = {text: _device_id_of_text(text) for text in set(device)}
    return cm.ReadingTable(
        ids,
        cm.PosixMoments(seconds),
        fev1_l,
        fvc_l,
        [a or b for a, b in zip(fev1_grade, session_grade, strict=True)],
        setting,
        list(map(texts.__getitem__, device)),
        pef_l_s,
    )


def _reading(s: Any) -> cm.SpirometryReading:
    _, id_, seconds, fev1_l, fvc_l, fev1_grade, session_grade, setting, device, pef_l_s = s
    return cm.SpirometryReading(
        id=id_,
        measured_at=datetime.fromtimestamp(seconds, UTC),
        fev1_l=fev1_l,
        fvc_l=fvc_l,
        grade=fev1_grade or session_grade,
        setting=setting,
        device_id=_device_id_of_text(device),
        pef_l_s=pef_l_s,
    )


def _dose(d: Any) -> cm.DoseLog:
    _, id_, taken_at, status, dose_mg = d
    return cm.DoseLog(id=id_, taken_at=taken_at, status=status, dose_mg=dose_mg)


def _regimen(r: Any) -> cm.RegimenEvent:
    _, id_, effective_at, kind, daily_dose_mg, drug_name = r
    return cm.RegimenEvent(
        id=id_,
        effective_at=effective_at,
        kind=kind,
        daily_dose_mg=daily_dose_mg,
        drug_name=drug_name,
    )


def _trough(t: Any) -> cm.TroughResult:
    _, id_, drawn_at, value_ng_ml, last_dose_at = t
    return cm.TroughResult(id=id_, drawn_at=drawn_at, value_ng_ml=value_ng_ml, last_dose_at=last_dose_at)


def _side_effect(r: Any) -> cm.SideEffectReport:
    _, id_, onset_at, term, severity, ctcae_grade, temperature_c, antibiotics_started, sudden = r
    return cm.SideEffectReport(
        id=id_,
        onset_at=onset_at,
        term=term,
        severity=severity,
        ctcae_grade=ctcae_grade,
        temperature_c=temperature_c,
        antibiotics_started=bool(antibiotics_started),
        sudden=bool(sudden),
    )


def _event(e: Any) -> cm.LamEvent:
    _, id_, occurred_at, kind = e
    return cm.LamEvent(id=id_, occurred_at=occurred_at, kind=kind)


@dataclass(frozen=True)
class _Stream:
    """One data stream as the engine reads it: the columns read, the row ->
    clinical mapping, and how far back it reaches (None: in full)."""

    field: str
    model: Any
    time_col: Any
    columns: tuple[Any, ...]
    to_clinical: Callable[[Any], Any]
    days_back: Callable[[Thresholds], int] | None
    # when set, a patient's rows are mapped all at once (instead of `to_clinical` per row)
    to_table: Callable[[Sequence[Any]], Sequence[Any]] | None = None
    # the time as `columns` read it, when not `time_col` itself: its
    # `posix_seconds` (a float per row, no datetime built per row)
    time_read: Any = None


S, D, R, T, E, L = SpirometrySession, SirolimusDose, RegimenEvent, TroughResult, SideEffectReport, LamEvent
_S_SECONDS = posix_seconds(S.measured_at).label("measured_at")
STREAMS = (
    # spirometry over the trend window plus the longest look-back the rules use
    _Stream(
        "readings",
        S,
        S.measured_at,
        # the time as POSIX seconds (what the series code reads); the device as
        # its stored JSON text, decoded once per distinct value (a patient's
        # sessions share one or two devices) instead of per row
        (
            S.id,
            _S_SECONDS,
            S.fev1_l,
            S.fvc_l,
            S.fev1_grade,
            S.session_grade,
            S.setting,
            cast(S.device, Text).label("device"),
            S.pef_l_s,
        ),
        _reading,
        lambda th: max(th.trend_window_days, th.acute_lookback_days, th.start_criterion_home_days) + 60,
        _readings,
        _S_SECONDS,
    ),
    # doses over the adherence windows
    _Stream(
        "doses",
        D,
        D.taken_at,
        (D.id, D.taken_at, D.status, D.dose_mg),
        _dose,
        lambda th: max(th.adherence_lookback_days, th.missed_doses_window_days) + 30,
    ),
    # regimen events and troughs in full (the trough schedule starts at the
    # last regimen change, however old)
    _Stream(
        "regimens",
        R,
        R.effective_at,
        (R.id, R.effective_at, R.kind, R.daily_dose_mg, R.drug_name),
        _regimen,
        None,
    ),
    _Stream("troughs", T, T.drawn_at, (T.id, T.drawn_at, T.value_ng_ml, T.last_dose_at), _trough, None),
    _Stream(
        "side_effects",
        E,
        E.onset_at,
        (
            E.id,
            E.onset_at,
            E.term,
            E.severity,
            E.ctcae_grade,
            E.temperature_c,
            E.antibiotics_started,
            E.sudden,
        ),
        _side_effect,
        lambda th: max(th.symptom_window_days, th.side_effect_lookback_days) + 30,
    ),
    _Stream("events", L, L.occurred_at, (L.id, L.occurred_at, L.kind), _event, lambda th: 90),
)


def _select(stream: _Stream, ids: Sequence[str], upto: datetime, *, ordered: bool = True) -> Any:
    """The stream's live rows of `ids` measured up to `upto`, by patient and
    time (`ordered`), or in whatever order the database returns them."""
    m = stream.model
    stmt = select(m.patient_id, *stream.columns).where(
        m.patient_id.in_(ids), m.deleted_at.is_(None), stream.time_col <= upto
    )
    return stmt.order_by(m.patient_id, stream.time_col) if ordered else stmt


def _stream_of(field: str) -> _Stream:
    return next(s for s in STREAMS if s.field == field)


def load_regimens(session: Session, patient_id: str, as_of: datetime) -> list[cm.RegimenEvent]:
    stream = _stream_of("regimens")
    return [_regimen(r) for r in session.execute(_select(stream, [patient_id], as_of))]


def load_troughs(session: Session, patient_id: str, as_of: datetime) -> list[cm.TroughResult]:
    stream = _stream_of("troughs")
    return [_trough(t) for t in session.execute(_select(stream, [patient_id], as_of))]


def load_histories(
    session: Session,
    patients: Sequence[Patient],
    *,
    as_of: Mapping[str, datetime],
    thresholds: Mapping[str, Thresholds],
) -> dict[str, cm.PatientHistory]:
    """Everything the engine needs about each of `patients`, measured up to her
    own `as_of[patient.id]` and inside her own windows (`STREAMS`, from her
    `thresholds`), with ONE query per data stream for all of them."""
    if not patients:
        return {}
    ids = [p.id for p in patients]
    if session.autoflush:  # as `session.execute` would before reading
        session.flush()
    upto = max(as_of[pid] for pid in ids)
    found: dict[str, dict[str, Sequence[Any]]] = {pid: {} for pid in ids}
    with _collector_paused():
        for stream in STREAMS:
            _load_stream(session, stream, ids, upto, as_of, thresholds, found)
    return {p.id: cm.PatientHistory(facts=patient_facts(p), **found[p.id]) for p in patients}


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a chunk's rows are read
    and mapped (if it was on; on again after, whatever happens).

    The rows hold no reference cycles and are freed by reference counting, but
    a 200-patient chunk at 10,000 patients reads ~115,000 spirometry rows (a
    driver tuple and a `Row` each), and allocating them in bulk set off about
    two full collections of the whole heap per chunk (~0.1 s each, ~1 ms per
    patient). Nothing is left uncollected: the collector runs again as usual
    after; the pause is process-wide for the fraction of a second it lasts."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _load_stream(
    session: Session,
    stream: _Stream,
    ids: Sequence[str],
    upto: datetime,
    as_of: Mapping[str, datetime],
    thresholds: Mapping[str, Thresholds],
    found: dict[str, dict[str, Sequence[Any]]],
) -> None:
    """One stream of `load_histories`: its one query, each patient's rows in
    her window, in time order, mapped into `found[patient id][stream.field]`."""
    since: dict[str, datetime] | None = None
    # Unordered: sorting a chunk's rows (~100,000 sessions) made PostgreSQL
    # spill them to disk; each patient's rows are put in time order below.
    stmt = _select(stream, ids, upto, ordered=False)
    days_back = stream.days_back
    if days_back is not None:
        since = {pid: as_of[pid] - timedelta(days=days_back(thresholds[pid])) for pid in ids}
        stmt = stmt.where(stream.time_col >= min(since.values()))
    # the time's place in a row (after the patient id), and each patient's
    # bounds as it is read (POSIX seconds compare as the moments do: distinct
    # microseconds stay distinct and in order as floats)
    read = stream.time_col if stream.time_read is None else stream.time_read
    at = 1 + next(i for i, c in enumerate(stream.columns) if c is read)
    last: Mapping[str, datetime | float] = as_of
    first: Mapping[str, datetime | float] | None = since
    if stream.time_read is not None:
        last = {pid: as_of[pid].timestamp() for pid in ids}
        first = None if since is None else {pid: m.timestamp() for pid, m in since.items()}
    to_clinical = stream.to_clinical
    to_table = stream.to_table
    bucket: dict[str, list[Any]] = {pid: [] for pid in ids}
    # Core rows (the statement names columns, not entities): no ORM loading per row
    for row in session.connection().execute(stmt).all():
        pid = row[0]
        moment = row[at]
        if moment > last[pid] or (first is not None and moment < first[pid]):
            continue
        bucket[pid].append(row)
    by_time = operator.itemgetter(at)
    for pid in ids:
        rows = bucket[pid]
        # stable, and close to free on rows that arrive in time order (as they
        # are stored); rows at the same time stay in the order the database
        # gave (as under ORDER BY, which leaves such ties in no set order)
        rows.sort(key=by_time)
        found[pid][stream.field] = [to_clinical(r) for r in rows] if to_table is None else to_table(rows)


def load_history(
    session: Session,
    patient: Patient,
    *,
    as_of: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> cm.PatientHistory:
    """Everything the engine needs about one patient, measured up to `as_of`
    (`load_histories` for one patient)."""
    return load_histories(session, [patient], as_of={patient.id: as_of}, thresholds={patient.id: thresholds})[
        patient.id
    ]


def device_id(device: dict[str, Any] | None) -> str | None:
    if not isinstance(device, dict):
        return None
    for key in ("id", "serial", "model"):
        value = device.get(key)
        if value:
            return str(value)
    return None


@functools.lru_cache(maxsize=4096)
def _device_id_of_text(device: str | None) -> str | None:
    """`device_id` of the `device` column read as its JSON text."""
    return None if device is None else device_id(json.loads(device))


def end_of_local_day(day: date, timezone: str) -> datetime:
    """The last second of a calendar day in a patient's zone (DST-aware)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(timezone))
