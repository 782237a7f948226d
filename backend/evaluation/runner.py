"""Run the clinical engine over stored data and keep alerts in step with it.

`evaluate_patients` (the nightly and incremental passes, `lamtrack evaluate`)
works a chunk of patients at a time, each chunk in one transaction:

1. read the chunk's patients, then each data stream with one ordinary query
   for the whole chunk, mapped to the engine's plain data by
   `backend.evaluation.loading.load_histories` (each patient sees only her
   own rows, inside her own windows and as-of time);
2. per patient, run the pure engine (`backend.clinical.evaluate.evaluate_patient`);
   then apply the results of the patients with something to write together
   (`apply_evaluations`: the chunk's alerts read once, one `raise_alerts` for
   all candidates, auto-resolve from what was read) inside one SAVEPOINT:
   alerts raised idempotently per episode, evaluation alerts whose condition
   cleared resolved. If that fails, each of those patients is applied again
   in her own SAVEPOINT. A failure (bad data in the engine, an alert that
   cannot be written) is hers alone: logged, counted in `errors`, and her
   `evaluated_at` left as it was so the next incremental pass tries her again;
3. `evaluated_at` set for the chunk's evaluated patients in one UPDATE.

Memory stays bounded by one chunk; patient ids are read in keyset-paged
chunks. A chunk whose read fails counts all its patients as errors and the
pass goes on with the next chunk.

Incremental by default: only patients whose data changed since their last
evaluation (`data_changed_at > evaluated_at`). A nightly full pass catches what
time alone changes (a trough draw that became overdue, readings that stopped).
`evaluated_at` is set to the moment the chunk's data were read, so a change
landing during an evaluation is picked up by the next one.

A replay (`as_of` in the past, `lamtrack evaluate --as-of`) reads only data
measured by then, stamps alerts with that time and leaves `evaluated_at` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.alerts.services import (
    EVALUATED_RULES,
    UNRESOLVED,
    KnownAlerts,
    auto_resolve_cleared,
    known_alerts,
    raise_alerts,
)
from backend.clinical import model as cm
from backend.config import Settings
from backend.db import utcnow
from backend.evaluation.loading import end_of_local_day, load_histories
from backend.patients.models import CareTeam, Patient
from backend.patients.services import thresholds_for

log = logging.getLogger(__name__)

# Patients per chunk (one transaction, one query per data stream).
CHUNK = 200


@dataclass
class PatientOutcome:
    patient_id: str
    opened: list[str] = field(default_factory=list)
    resolved: int = 0
    candidates: int = 0


def apply_evaluations(
    session: Session,
    batch: Sequence[tuple[Patient, cm.Evaluation, datetime]],
    *,
    settings: Settings,
    known: KnownAlerts | None = None,
) -> list[PatientOutcome]:
    """Raise (or refresh) the evaluations' alert candidates and auto-resolve each
    patient's evaluation alerts her evaluation no longer raises, in the caller's
    transaction: one `raise_alerts` for all of them, with the patients' alerts
    read once (`known`, or here)."""
    if known is None:
        known = known_alerts(session, [patient.id for patient, _, _ in batch])
    items = [(patient, c, as_of) for patient, evaluation, as_of in batch for c in evaluation.candidates]
    raised = iter(raise_alerts(session, items, settings=settings, known=known))
    outcomes: list[PatientOutcome] = []
    for patient, evaluation, as_of in batch:
        outcome = PatientOutcome(patient.id, candidates=len(evaluation.candidates))
        outcome.opened = [a.id for a in (next(raised) for _ in evaluation.candidates) if a is not None]
        if settings.alert_auto_resolve:
            outcome.resolved = auto_resolve_cleared(
                session,
                patient_id=patient.id,
                evaluated_rules=EVALUATED_RULES,
                present={(c.rule, c.episode_key) for c in evaluation.candidates},
                as_of=as_of,
                clear_for=timedelta(days=settings.alert_auto_resolve_after_days),
                known=known,
            )
        outcomes.append(outcome)
    return outcomes


def apply_evaluation(
    session: Session,
    patient: Patient,
    evaluation: cm.Evaluation,
    *,
    as_of: datetime,
    settings: Settings,
) -> PatientOutcome:
    """`apply_evaluations` for one patient."""
    return apply_evaluations(session, [(patient, evaluation, as_of)], settings=settings)[0]


def evaluate_patients(
    session_factory: sessionmaker[Session],
    *,
    settings: Settings,
    as_of: datetime | date | None = None,
    full: bool = False,
    patient_ids: Sequence[str] | None = None,
    replay: bool = False,
    chunk_size: int = CHUNK,
) -> dict[str, int]:
    """Evaluate patients as of `as_of` (default now), a chunk at a time.

    A calendar date means the end of that day in each patient's own time zone,
    as the nightly pass sees it. `replay=True` (a past as-of date) leaves
    `evaluated_at` untouched so the live incremental pass still sees the
    patient's newer data. Returns counts: patients evaluated, alerts opened
    and resolved, errors.
    """
    as_of = as_of or utcnow()
    summary = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
    for ids in _patient_id_chunks(session_factory, full=full, patient_ids=patient_ids, size=chunk_size):
        try:
            part = _evaluate_chunk(session_factory, ids, as_of=as_of, settings=settings, replay=replay)
        except Exception:  # e.g. the chunk could not be read: the next chunks still run
            log.exception("evaluation of a chunk of %d patients failed", len(ids))
            part = {"patients": 0, "opened": 0, "resolved": 0, "errors": len(ids)}
        for key in summary:
            summary[key] += part[key]
    return summary


def _evaluate_chunk(
    session_factory: sessionmaker[Session],
    ids: Sequence[str],
    *,
    as_of: datetime | date,
    settings: Settings,
    replay: bool,
) -> dict[str, int]:
    from backend.clinical.evaluate import evaluate_patient

    summary = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
    read_at = utcnow()
    with session_factory.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            # No JIT compilation in this transaction: the chunk's spirometry query
            # (~115,000 rows for 200 patients) costs more than `jit_above_cost`,
            # so PostgreSQL compiled it on every chunk (18 functions, ~60 ms of
            # compiling summed over the leader and its workers) for a plan run
            # once: its execution took 122 ms with JIT, 99 ms without (medians).
            session.execute(text("SET LOCAL jit = off"))
        patients = list(session.scalars(select(Patient).where(Patient.id.in_(ids)).order_by(Patient.id)))
        moments = {
            p.id: as_of if isinstance(as_of, datetime) else end_of_local_day(as_of, p.timezone)
            for p in patients
        }
        # the chunk's care teams, held here so that `thresholds_for` (and the
        # alert emails) find them in the session instead of reading each again
        teams = list(
            session.scalars(select(CareTeam).where(CareTeam.id.in_({p.care_team_id for p in patients})))
        )
        thresholds = {p.id: thresholds_for(session, p) for p in patients}
        histories = load_histories(session, patients, as_of=moments, thresholds=thresholds)
        evaluated: list[tuple[Patient, cm.Evaluation, datetime]] = []
        for patient in patients:
            moment = moments[patient.id]
            try:
                # only the candidates are kept: without the report-only segment trends
                evaluation = evaluate_patient(
                    histories.pop(patient.id),
                    as_of=moment,
                    thresholds=thresholds[patient.id],
                    with_segments=False,
                )
            except Exception:  # one patient's failure must not stop the others
                log.exception("evaluation of patient %s failed", patient.id)
                summary["errors"] += 1
                continue
            evaluated.append((patient, evaluation, moment))
        # The chunk's unresolved alerts, read once, just before they are written
        # (not before the engine ran: the less time between reading an alert and
        # writing it, the less a clinician's concurrent change can be missed): a
        # patient with no candidate and no unresolved evaluation alert has
        # nothing to write.
        unresolved = list(
            session.scalars(
                select(Alert).where(Alert.patient_id.in_(ids), Alert.open_episode_key.is_not(None))
            )
        )
        with_alerts = {
            a.patient_id for a in unresolved if a.source == "evaluation" and a.status in UNRESOLVED
        }
        done: list[str] = []
        writes: list[tuple[Patient, cm.Evaluation, datetime]] = []
        for patient, evaluation, moment in evaluated:
            if evaluation.candidates or patient.id in with_alerts:
                writes.append((patient, evaluation, moment))
            else:
                done.append(patient.id)
                summary["patients"] += 1
        outcomes = _write_alerts(session, writes, unresolved, settings=settings)
        summary["errors"] += len(writes) - len(outcomes)
        for outcome in outcomes:
            done.append(outcome.patient_id)
            summary["patients"] += 1
            summary["opened"] += len(outcome.opened)
            summary["resolved"] += outcome.resolved
        del teams
        if done and not replay:
            session.execute(
                update(Patient)
                .where(Patient.id.in_(done))
                .values(evaluated_at=read_at, updated_at=Patient.updated_at)
                .execution_options(synchronize_session=False)
            )
    return summary


def _write_alerts(
    session: Session,
    writes: Sequence[tuple[Patient, cm.Evaluation, datetime]],
    unresolved: Sequence[Alert],
    *,
    settings: Settings,
) -> list[PatientOutcome]:
    """Apply the chunk's evaluations that have alerts to write, all together in
    one SAVEPOINT with the patients' alerts read once. If that fails, each
    patient is written again on her own, in her own SAVEPOINT, so that one
    patient's failure (logged) loses only her alerts. The outcomes of the
    patients written."""
    if not writes:
        return []
    try:
        with session.begin_nested():
            known = known_alerts(session, [p.id for p, _, _ in writes], unresolved=unresolved)
            return apply_evaluations(session, writes, settings=settings, known=known)
    except Exception:
        log.warning("writing the alerts of %d patients together failed; writing them one by one", len(writes))
    outcomes: list[PatientOutcome] = []
    for patient, evaluation, moment in writes:
        try:
            with session.begin_nested():
                outcome = apply_evaluation(session, patient, evaluation, as_of=moment, settings=settings)
            outcomes.append(outcome)
        except Exception:  # one patient's failure must not stop the others
            log.exception("evaluation of patient %s failed", patient.id)
    return outcomes


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
