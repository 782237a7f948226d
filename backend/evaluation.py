"""Run the clinical engine over stored data and keep alerts in step with it.

`evaluate_patients` (the nightly and incremental passes, `lamtrack evaluate`)
works a chunk of patients at a time (`backend.evaluation_batch`): one query per
data stream per chunk, the home series and trends of the whole chunk computed
vectorised, then the rules per patient; alerts are raised idempotently per
episode and evaluation alerts whose condition cleared are resolved, inside a
savepoint per patient. Memory stays bounded by one chunk; patient ids are read
in keyset-paged chunks.

`evaluate_one` / `evaluate_patients_each` are the per-patient form (one
transaction and `load_history` per patient): the reference the batched pass is
tested against, and its fallback if a chunk as a whole fails.

Incremental by default: only patients whose data changed since their last
evaluation (`data_changed_at > evaluated_at`). A nightly full pass catches what
time alone changes (a trough draw that became overdue, readings that stopped).
`evaluated_at` is set to the moment the patient's data were read, so a change
landing during an evaluation is picked up by the next one.

A replay (`as_of` in the past, `lamtrack evaluate --as-of`) reads only data
measured by then, stamps alerts with that time and leaves `evaluated_at` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.services import EVENT_RULES, auto_resolve_cleared, raise_alert
from backend.clinical import model as cm
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.config import Settings
from backend.db import utcnow
from backend.events.models import LamEvent
from backend.medication.models import RegimenEvent, SirolimusDose
from backend.patients.models import Patient
from backend.patients.services import thresholds_for
from backend.side_effects.models import SideEffectReport
from backend.spirometry.models import SpirometrySession
from backend.troughs.models import TroughResult

log = logging.getLogger(__name__)

CHUNK = 200
# Patients per transaction in the batched pass (`evaluate_patients`).
BATCH_CHUNK = 500
# Rules `evaluate_patient` decides each time; an open evaluation alert of one of
# these rules that the engine no longer raises has cleared.
EVALUATED_RULES = tuple(r for r in cm.RULE_IDS if r not in EVENT_RULES)


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
    )


def _rows(session: Session, model: Any, time_col: Any, patient_id: str, as_of: datetime,
          since: datetime | None = None) -> Sequence[Any]:
    stmt = (
        select(model)
        .where(model.patient_id == patient_id, model.deleted_at.is_(None), time_col <= as_of)
        .order_by(time_col)
    )
    if since is not None:
        stmt = stmt.where(time_col >= since)
    return session.scalars(stmt).all()


def load_regimens(session: Session, patient_id: str, as_of: datetime) -> list[cm.RegimenEvent]:
    return [
        cm.RegimenEvent(id=r.id, effective_at=r.effective_at, kind=r.kind,
                        daily_dose_mg=r.daily_dose_mg, drug_name=r.drug_name)
        for r in _rows(session, RegimenEvent, RegimenEvent.effective_at, patient_id, as_of)
    ]


def load_troughs(session: Session, patient_id: str, as_of: datetime) -> list[cm.TroughResult]:
    return [
        cm.TroughResult(id=t.id, drawn_at=t.drawn_at, value_ng_ml=t.value_ng_ml,
                        last_dose_at=t.last_dose_at)
        for t in _rows(session, TroughResult, TroughResult.drawn_at, patient_id, as_of)
    ]


def load_history(
    session: Session,
    patient: Patient,
    *,
    as_of: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> cm.PatientHistory:
    """Everything the engine needs about one patient, measured up to `as_of`.

    Spirometry reaches back over the trend window plus the longest look-back the
    rules use; doses over the adherence windows; regimen events and troughs in
    full (the trough schedule starts at the last regimen change, however old).
    """
    pid = patient.id
    reading_days = max(thresholds.trend_window_days, thresholds.acute_lookback_days,
                       thresholds.start_criterion_home_days) + 60
    readings = [
        cm.SpirometryReading(
            id=s.id, measured_at=s.measured_at, fev1_l=s.fev1_l, fvc_l=s.fvc_l,
            grade=s.fev1_grade or s.session_grade, setting=s.setting,
            device_id=_device_id(s.device),
        )
        for s in _rows(session, SpirometrySession, SpirometrySession.measured_at, pid, as_of,
                       since=as_of - timedelta(days=reading_days))
    ]
    dose_days = max(thresholds.adherence_lookback_days, thresholds.missed_doses_window_days) + 30
    doses = [
        cm.DoseLog(id=d.id, taken_at=d.taken_at, status=d.status, dose_mg=d.dose_mg)
        for d in _rows(session, SirolimusDose, SirolimusDose.taken_at, pid, as_of,
                       since=as_of - timedelta(days=dose_days))
    ]
    side_effects = [
        cm.SideEffectReport(
            id=r.id, onset_at=r.onset_at, term=r.term, severity=r.severity,
            ctcae_grade=r.ctcae_grade, temperature_c=r.temperature_c,
            antibiotics_started=bool(r.antibiotics_started),
        )
        for r in _rows(session, SideEffectReport, SideEffectReport.onset_at, pid, as_of,
                       since=as_of - timedelta(days=max(thresholds.symptom_window_days,
                                                        thresholds.side_effect_lookback_days) + 30))
    ]
    events = [
        cm.LamEvent(id=e.id, occurred_at=e.occurred_at, kind=e.kind)
        for e in _rows(session, LamEvent, LamEvent.occurred_at, pid, as_of,
                       since=as_of - timedelta(days=90))
    ]
    return cm.PatientHistory(
        facts=patient_facts(patient),
        readings=readings,
        doses=doses,
        regimens=load_regimens(session, pid, as_of),
        troughs=load_troughs(session, pid, as_of),
        side_effects=side_effects,
        events=events,
    )


def _device_id(device: dict[str, Any] | None) -> str | None:
    if not isinstance(device, dict):
        return None
    for key in ("id", "serial", "model"):
        value = device.get(key)
        if value:
            return str(value)
    return None


@dataclass
class PatientOutcome:
    patient_id: str
    opened: list[str] = field(default_factory=list)
    resolved: int = 0
    candidates: int = 0


def evaluate_one(
    session: Session,
    patient: Patient,
    *,
    as_of: datetime,
    settings: Settings,
    auto_resolve: bool | None = None,
) -> PatientOutcome:
    """Evaluate one patient in the caller's transaction and apply the result."""
    from backend.clinical.evaluate import evaluate_patient

    thresholds = thresholds_for(session, patient)
    history = load_history(session, patient, as_of=as_of, thresholds=thresholds)
    evaluation = evaluate_patient(history, as_of=as_of, thresholds=thresholds)
    outcome = PatientOutcome(patient.id, candidates=len(evaluation.candidates))
    present: set[tuple[str, str]] = set()
    for candidate in evaluation.candidates:
        present.add((candidate.rule, candidate.episode_key))
        alert = raise_alert(session, patient=patient, candidate=candidate, as_of=as_of,
                            settings=settings)
        if alert is not None:
            outcome.opened.append(alert.id)
    if settings.alert_auto_resolve if auto_resolve is None else auto_resolve:
        outcome.resolved = auto_resolve_cleared(
            session, patient_id=patient.id, evaluated_rules=EVALUATED_RULES,
            present=present, as_of=as_of,
            clear_for=timedelta(days=settings.alert_auto_resolve_after_days),
        )
    return outcome


def end_of_local_day(day: date, timezone: str) -> datetime:
    """The last second of a calendar day in a patient's zone (DST-aware)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(timezone))


def _patient_ids(
    session_factory: sessionmaker[Session],
    *,
    full: bool,
    patient_ids: Sequence[str] | None,
) -> Iterator[str]:
    """Patient ids to evaluate, one at a time."""
    for chunk in _patient_id_chunks(session_factory, full=full, patient_ids=patient_ids,
                                    size=CHUNK):
        yield from chunk


def evaluate_patients_each(
    session_factory: sessionmaker[Session],
    *,
    settings: Settings,
    as_of: datetime | date | None = None,
    full: bool = False,
    patient_ids: Sequence[str] | None = None,
    replay: bool = False,
) -> dict[str, int]:
    """The per-patient pass: one transaction and `evaluate_one` per patient.

    Same result as `evaluate_patients` (the reference it is tested against),
    at about ten queries per patient.
    """
    as_of = as_of or utcnow()
    summary = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
    for pid in _patient_ids(session_factory, full=full, patient_ids=patient_ids):
        _evaluate_single(session_factory, pid, as_of=as_of, settings=settings, replay=replay,
                         summary=summary)
    return summary


def _evaluate_single(
    session_factory: sessionmaker[Session],
    pid: str,
    *,
    as_of: datetime | date,
    settings: Settings,
    replay: bool,
    summary: dict[str, int],
) -> None:
    read_at = utcnow()
    try:
        with session_factory.begin() as session:
            patient = session.get(Patient, pid)
            if patient is None:
                return
            moment = (as_of if isinstance(as_of, datetime)
                      else end_of_local_day(as_of, patient.timezone))
            outcome = evaluate_one(session, patient, as_of=moment, settings=settings)
            if not replay:
                session.execute(
                    update(Patient)
                    .where(Patient.id == pid)
                    .values(evaluated_at=read_at, updated_at=Patient.updated_at)
                    .execution_options(synchronize_session=False)
                )
    except Exception:  # one patient's bad data must not stop the others
        log.exception("evaluation of patient %s failed", pid)
        summary["errors"] += 1
        return
    summary["patients"] += 1
    summary["opened"] += len(outcome.opened)
    summary["resolved"] += outcome.resolved


def evaluate_patients(
    session_factory: sessionmaker[Session],
    *,
    settings: Settings,
    as_of: datetime | date | None = None,
    full: bool = False,
    patient_ids: Sequence[str] | None = None,
    replay: bool = False,
    chunk_size: int = BATCH_CHUNK,
) -> dict[str, int]:
    """Evaluate patients as of `as_of` (default now), a chunk at a time.

    A calendar date means the end of that day in each patient's own time zone,
    as the nightly pass sees it. `replay=True` (a past as-of date) leaves
    `evaluated_at` untouched so the live incremental pass still sees the
    patient's newer data. See `backend.evaluation_batch` for the unit of work
    (one transaction per chunk, a savepoint per patient with alert changes);
    the result is the same as `evaluate_patients_each`.
    """
    from backend.evaluation_batch import evaluate_chunk, read_chunk

    as_of = as_of or utcnow()
    moment = as_of
    summary = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
    cache = ChunkCache()
    chunks = _patient_id_chunks(session_factory, full=full, patient_ids=patient_ids,
                                size=chunk_size)

    def read(ids: list[str]) -> Any:
        return read_chunk(session_factory, ids, as_of=moment)

    # On a server database the next chunk is read in a reader thread while this
    # one is evaluated (the database works while Python computes). SQLite takes
    # its write lock at BEGIN, so there the chunks are read in turn.
    with session_factory() as probe:
        threaded = probe.get_bind().dialect.name != "sqlite"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation-reader") as reader:
        ids = next(chunks, None)
        pending = reader.submit(read, ids) if threaded and ids else None
        while ids:
            current = ids
            ids = next(chunks, None)
            try:
                data = pending.result() if pending is not None else read(current)
                error = None
            except Exception as exc:
                data, error = None, exc
            pending = reader.submit(read, ids) if threaded and ids else None
            part = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
            try:
                if error is not None:
                    raise error
                part = evaluate_chunk(session_factory, data, settings=settings,
                                      replay=replay, cache=cache)
            except Exception:  # a chunk-level failure: fall back to one patient at a time
                log.exception("batched evaluation of %d patients failed; evaluating them "
                              "one by one", len(current))
                part = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
                for pid in current:
                    _evaluate_single(session_factory, pid, as_of=moment, settings=settings,
                                     replay=replay, summary=part)
            for key in summary:
                summary[key] += part[key]
    return summary


class ChunkCache:
    """State kept between chunks of one pass (zone offset tables)."""

    def __init__(self) -> None:
        from backend.clinical.nightly import ZoneOffsets

        self.offsets = ZoneOffsets()


def _patient_id_chunks(
    session_factory: sessionmaker[Session],
    *,
    full: bool,
    patient_ids: Sequence[str] | None,
    size: int,
) -> Iterator[list[str]]:
    """Patient ids to evaluate in chunks of `size` (keyset-paged when read)."""
    if patient_ids is not None:
        ids = list(dict.fromkeys(patient_ids))
        for i in range(0, len(ids), size):
            yield ids[i:i + size]
        return
    after = ""
    while True:
        stmt = select(Patient.id).where(Patient.id > after).order_by(Patient.id).limit(size)
        if not full:
            stmt = stmt.where(
                Patient.data_changed_at.is_not(None),
                or_(Patient.evaluated_at.is_(None),
                    Patient.data_changed_at > Patient.evaluated_at),
            )
        with session_factory() as session:
            chunk = list(session.scalars(stmt))
        if not chunk:
            return
        yield chunk
        after = chunk[-1]
