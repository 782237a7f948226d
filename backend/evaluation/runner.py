"""Run the clinical engine over stored data and keep alerts in step with it.

`evaluate_patients` (the nightly and incremental passes, `lamtrack evaluate`)
works a chunk of patients at a time (`backend.evaluation.batch`): one query per
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
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.services import EVALUATED_RULES, auto_resolve_cleared, raise_alert
from backend.config import Settings
from backend.db import utcnow
from backend.evaluation.batch import ChunkCache, evaluate_chunk, read_chunk
from backend.evaluation.loading import end_of_local_day, load_history
from backend.patients.models import Patient
from backend.patients.services import thresholds_for

log = logging.getLogger(__name__)

CHUNK = 200
# Patients per transaction in the batched pass (`evaluate_patients`).
BATCH_CHUNK = 500


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
        alert = raise_alert(session, patient=patient, candidate=candidate, as_of=as_of, settings=settings)
        if alert is not None:
            outcome.opened.append(alert.id)
    if settings.alert_auto_resolve if auto_resolve is None else auto_resolve:
        outcome.resolved = auto_resolve_cleared(
            session,
            patient_id=patient.id,
            evaluated_rules=EVALUATED_RULES,
            present=present,
            as_of=as_of,
            clear_for=timedelta(days=settings.alert_auto_resolve_after_days),
        )
    return outcome


def _patient_ids(
    session_factory: sessionmaker[Session],
    *,
    full: bool,
    patient_ids: Sequence[str] | None,
) -> Iterator[str]:
    """Patient ids to evaluate, one at a time."""
    for chunk in _patient_id_chunks(session_factory, full=full, patient_ids=patient_ids, size=CHUNK):
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
        _evaluate_single(session_factory, pid, as_of=as_of, settings=settings, replay=replay, summary=summary)
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
            moment = as_of if isinstance(as_of, datetime) else end_of_local_day(as_of, patient.timezone)
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
    patient's newer data. See `backend.evaluation.batch` for the unit of work
    (one transaction per chunk, a savepoint per patient with alert changes);
    the result is the same as `evaluate_patients_each`.
    """
    as_of = as_of or utcnow()
    moment = as_of
    summary = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
    cache = ChunkCache()
    chunks = _patient_id_chunks(session_factory, full=full, patient_ids=patient_ids, size=chunk_size)

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
                part = evaluate_chunk(session_factory, data, settings=settings, replay=replay, cache=cache)
            except Exception:  # a chunk-level failure: fall back to one patient at a time
                log.exception(
                    "batched evaluation of %d patients failed; evaluating them one by one", len(current)
                )
                part = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
                for pid in current:
                    _evaluate_single(
                        session_factory, pid, as_of=moment, settings=settings, replay=replay, summary=part
                    )
            for key in summary:
                summary[key] += part[key]
    return summary


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
            yield ids[i : i + size]
        return
    after = ""
    while True:
        stmt = select(Patient.id).where(Patient.id > after).order_by(Patient.id).limit(size)
        if not full:
            stmt = stmt.where(
                Patient.data_changed_at.is_not(None),
                or_(Patient.evaluated_at.is_(None), Patient.data_changed_at > Patient.evaluated_at),
            )
        with session_factory() as session:
            chunk = list(session.scalars(stmt))
        if not chunk:
            return
        yield chunk
        after = chunk[-1]
