"""The nightly evaluation of a chunk of patients (a few hundred) at once.

Unit of work: a short read transaction, then one write transaction per chunk.
On PostgreSQL the next chunk is read in a reader thread while this one is
evaluated (`evaluation.evaluate_patients`); at most two chunks are in memory.

1. Read (`read_chunk`): the patients (ORM, for thresholds and alert ownership),
   then each data stream with ONE column-only query for the whole chunk
   (`patient_id IN (...)`), limited to the widest window any patient of the
   chunk needs; each row is then kept only inside its own patient's window and
   as-of time, so every patient sees exactly the rows `load_history` would give
   her.
2. Compute in memory: the home daily series of all patients with
   `nightly.chunk_series` (vectorised), the trend of all patients with
   `batch.batch_trends` in one call used as a conservative screen (a patient
   whose rapid-decline verdict could hold gets the exact per-patient trend),
   then the per-patient rules via `evaluate_prepared` on the series and the
   small streams. A failure here is logged for that patient only.
3. Write: the chunk's unresolved alerts are read once; a patient whose
   candidates are all open episodes has them refreshed in memory (what
   `raise_alert` does after finding them). The candidates of every patient
   with new episodes and nothing to resolve are raised together with ONE
   `raise_alerts` call inside one SAVEPOINT: the same rows `raise_alert`
   writes (alert, alert event, audit row, care-team emails), in a few
   statements for the whole chunk instead of about ten per alert, idempotent
   per episode (the INSERT skips what the unique open-episode constraint
   refuses). If that SAVEPOINT fails, those patients are written one by one as
   below, so a failure is still one patient's alone. A patient with an open
   evaluation alert the evaluation no longer raises goes through
   `raise_alert` and `auto_resolve_cleared` inside her own SAVEPOINT. If a
   chunk fails as a whole, `evaluate_patients` evaluates its patients one by
   one. `evaluated_at` is set for the chunk's evaluated patients in one
   UPDATE (the moment the chunk's data were read), except in a replay.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Text, cast, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.alerts.services import (
    EVALUATED_RULES,
    UNRESOLVED,
    _refresh,
    auto_resolve_cleared,
    raise_alert,
    raise_alerts,
)
from backend.clinical import gli
from backend.clinical import model as cm
from backend.clinical.evaluate import Segment, compute_trend, evaluate_prepared, treatment_segments
from backend.clinical.gli import age_on
from backend.clinical.nightly import chunk_series, trend_screen
from backend.clinical.series import is_trusted, latest_clinic
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.config import Settings
from backend.db import utcnow
from backend.evaluation.loading import device_id, end_of_local_day, patient_facts
from backend.patients.models import Patient
from backend.patients.services import thresholds_for
from backend.streams.events.models import LamEvent
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.troughs.models import TroughResult

log = logging.getLogger(__name__)


class ChunkCache:
    """State kept between chunks of one pass (zone offset tables)."""

    def __init__(self) -> None:
        from backend.clinical.nightly import ZoneOffsets

        self.offsets = ZoneOffsets()


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def _windows(th: Thresholds) -> dict[str, int]:
    """Look-back days per stream, as `load_history` reads them."""
    return {
        "readings": max(th.trend_window_days, th.acute_lookback_days, th.start_criterion_home_days) + 60,
        "doses": max(th.adherence_lookback_days, th.missed_doses_window_days) + 30,
        "side_effects": max(th.symptom_window_days, th.side_effect_lookback_days) + 30,
        "events": 90,
    }


def _thresholds(session: Session, patient: Patient, cache: dict[Any, Thresholds]) -> Thresholds:
    key = (
        patient.care_team_id,
        json.dumps(patient.rule_overrides or {}, sort_keys=True, default=str),
        patient.trough_target_low,
        patient.trough_target_high,
    )
    found = cache.get(key)
    if found is None:
        found = cache[key] = thresholds_for(session, patient)
    return found


def _stream(
    session: Session,
    cols: Sequence[Any],
    model: Any,
    time_col: Any,
    ids: Sequence[str],
    upto: datetime,
    since: datetime | None,
    *extra: Any,
) -> Sequence[Any]:
    stmt = (
        select(model.patient_id, *cols)
        .where(model.patient_id.in_(ids), model.deleted_at.is_(None), time_col <= upto, *extra)
        .order_by(model.patient_id, time_col)
    )
    if since is not None:
        stmt = stmt.where(time_col >= since)
    # Core execution on the session's connection: plain rows, no ORM loading
    return session.connection().execute(stmt).all()


class _Chunk:
    """The patients of one chunk with their as-of moments, thresholds and windows."""

    def __init__(self, session: Session, patients: list[Patient], as_of: datetime | date) -> None:
        cache: dict[Any, Thresholds] = {}
        self.patients = patients
        self.code = {p.id: i for i, p in enumerate(patients)}
        self.moment = [
            as_of if isinstance(as_of, datetime) else end_of_local_day(as_of, p.timezone) for p in patients
        ]
        self.thresholds = [_thresholds(session, p, cache) for p in patients]
        wins = [_windows(t) for t in self.thresholds]
        self.since = (
            {k: [m - timedelta(days=w[k]) for m, w in zip(self.moment, wins, strict=True)] for k in wins[0]}
            if patients
            else {}
        )
        self.upto = max(self.moment) if patients else None

    def earliest(self, stream: str) -> datetime:
        return min(self.since[stream])


def _group(rows: Sequence[Any], chunk: _Chunk, stream: str | None, time_index: int) -> dict[int, list[Any]]:
    """Rows by patient code, each kept inside its patient's window and as-of time."""
    out: dict[int, list[Any]] = defaultdict(list)
    code = chunk.code
    for row in rows:
        i = code[row[0]]
        moment = row[time_index]
        if moment > chunk.moment[i] or (stream is not None and moment < chunk.since[stream][i]):
            continue
        out[i].append(row)
    return out


@dataclass
class ChunkData:
    """What `read_chunk` read for one chunk: plain rows, no open session."""

    read_at: datetime
    chunk: _Chunk
    streams: dict[str, Any]


def read_chunk(
    session_factory: sessionmaker[Session], ids: Sequence[str], *, as_of: datetime | date
) -> ChunkData | None:
    """Read a chunk's patients and data streams (one query per stream).

    Runs in its own short read transaction (possibly in a reader thread while
    the previous chunk is evaluated); `read_at` is taken before any read, so
    data changed meanwhile is seen by the next incremental pass.
    """
    read_at = utcnow()
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            # A chunk is a few percent of a large stream table: without this the
            # planner tends to scan the whole table once per chunk instead of
            # using the (patient_id, time) indexes. Local to this read transaction.
            session.execute(text("SET LOCAL enable_seqscan = off"))
        patients = list(session.scalars(select(Patient).where(Patient.id.in_(ids)).order_by(Patient.id)))
        if not patients:
            return None
        chunk = _Chunk(session, patients, as_of)
        streams = _read_streams(session, chunk)
    return ChunkData(read_at, chunk, streams)


def evaluate_chunk(
    session_factory: sessionmaker[Session],
    data: ChunkData | None,
    *,
    settings: Settings,
    replay: bool,
    cache: ChunkCache,
) -> dict[str, int]:
    """Evaluate a chunk in memory, then write its alert changes in one transaction."""
    summary = {"patients": 0, "opened": 0, "resolved": 0, "errors": 0}
    if data is None:
        return summary
    chunk = data.chunk
    patients = chunk.patients
    results = _evaluate_in_memory(chunk, data.streams, cache)
    with session_factory.begin() as session:
        alerts = _unresolved_alerts(session, [p.id for p in patients])
        done: list[str] = []
        clear_for = timedelta(days=settings.alert_auto_resolve_after_days)
        opening: list[int] = []  # patients with new alerts and nothing to resolve

        def count(patient: Patient, opened: int, resolved: int) -> None:
            done.append(patient.id)
            summary["patients"] += 1
            summary["opened"] += opened
            summary["resolved"] += resolved

        def apply_each(i: int) -> None:
            """`_apply` for one patient; a failure is hers alone."""
            patient, evaluation = patients[i], results[i]
            assert evaluation is not None
            try:
                opened, resolved = _apply(
                    session,
                    patient,
                    evaluation,
                    chunk.moment[i],
                    alerts.get(patient.id, []),
                    settings,
                    clear_for,
                )
            except Exception:  # one patient's failure must not stop the others
                log.exception("evaluation of patient %s failed", patient.id)
                summary["errors"] += 1
                return
            count(patient, opened, resolved)

        for i, patient in enumerate(patients):
            evaluation = results[i]
            if evaluation is None:
                summary["errors"] += 1
                continue
            try:
                action = _plan(evaluation, chunk.moment[i], alerts.get(patient.id, []), settings)
            except Exception:  # one patient's failure must not stop the others
                log.exception("evaluation of patient %s failed", patient.id)
                summary["errors"] += 1
                continue
            if action == "open":
                opening.append(i)
            elif action == "each":
                apply_each(i)
            else:
                count(patient, 0, 0)
        if opening:
            try:
                with session.begin_nested():
                    counts = _open_together(
                        session, [(patients[i], results[i], chunk.moment[i]) for i in opening], settings
                    )
            except Exception:  # e.g. one patient's bad data: her alone, as below
                log.exception(
                    "opening the new alerts of %d patients together failed; opening them patient by patient",
                    len(opening),
                )
                counts = None
            for k, i in enumerate(opening):
                if counts is not None:
                    count(patients[i], counts[k], 0)
                else:
                    apply_each(i)
        if done and not replay:
            session.execute(
                update(Patient)
                .where(Patient.id.in_(done))
                .values(evaluated_at=data.read_at, updated_at=Patient.updated_at)
                .execution_options(synchronize_session=False)
            )
    return summary


def _unresolved_alerts(session: Session, ids: Sequence[str]) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = defaultdict(list)
    stmt = select(Alert).where(
        Alert.patient_id.in_(ids), or_(Alert.open_episode_key.is_not(None), Alert.status.in_(UNRESOLVED))
    )
    for alert in session.scalars(stmt):
        out[alert.patient_id].append(alert)
    return out


def _must_resolve(
    evaluation: cm.Evaluation, moment: datetime, known: list[Alert], settings: Settings
) -> bool:
    """Whether an open evaluation alert of the patient is no longer raised."""
    present = {(c.rule, c.episode_key) for c in evaluation.candidates}
    rules = set(EVALUATED_RULES)
    return settings.alert_auto_resolve and any(
        a.status in UNRESOLVED
        and a.source == "evaluation"
        and a.rule in rules
        and a.opened_at <= moment
        and (a.rule, a.episode_key) not in present
        for a in known
    )


def _plan(evaluation: cm.Evaluation, moment: datetime, known: list[Alert], settings: Settings) -> str:
    """What a patient's evaluation changes: "none"; "refreshed" (only open
    episodes, refreshed here in memory and flushed with the chunk); "open" (new
    episodes and nothing to resolve: opened with the chunk's other new alerts
    by `_open_together`); "each" (something to resolve: `_apply`)."""
    if _must_resolve(evaluation, moment, known, settings):
        return "each"
    if not evaluation.candidates:
        return "none"
    open_by_key = {(a.rule, a.open_episode_key): a for a in known if a.open_episode_key is not None}
    if not all((c.rule, c.episode_key) in open_by_key for c in evaluation.candidates):
        return "open"
    for candidate in evaluation.candidates:
        _refresh(open_by_key[(candidate.rule, candidate.episode_key)], candidate, moment)
    return "refreshed"


def _open_together(
    session: Session, items: Sequence[tuple[Patient, cm.Evaluation | None, datetime]], settings: Settings
) -> list[int]:
    """Raise the candidates of several patients with one `raise_alerts` call
    (open episodes refreshed, new ones opened); alerts opened per patient."""
    flat: list[tuple[Patient, cm.AlertCandidate, datetime]] = []
    owner: list[int] = []
    for k, (patient, evaluation, moment) in enumerate(items):
        assert evaluation is not None
        for candidate in evaluation.candidates:
            flat.append((patient, candidate, moment))
            owner.append(k)
    opened = [0] * len(items)
    for k, alert in zip(owner, raise_alerts(session, flat, settings=settings), strict=True):
        opened[k] += alert is not None
    return opened


def _apply(
    session: Session,
    patient: Patient,
    evaluation: cm.Evaluation,
    moment: datetime,
    known: list[Alert],
    settings: Settings,
    clear_for: timedelta,
) -> tuple[int, int]:
    """Raise/refresh the candidates and auto-resolve what cleared (as
    `evaluate_one`), inside the patient's own SAVEPOINT."""
    present = {(c.rule, c.episode_key) for c in evaluation.candidates}
    must_resolve = _must_resolve(evaluation, moment, known, settings)
    open_by_key = {(a.rule, a.open_episode_key): a for a in known if a.open_episode_key is not None}
    opened = resolved = 0
    with session.begin_nested():
        for candidate in evaluation.candidates:
            existing = open_by_key.get((candidate.rule, candidate.episode_key))
            if existing is not None:
                _refresh(existing, candidate, moment)
                continue
            alert = raise_alert(
                session, patient=patient, candidate=candidate, as_of=moment, settings=settings
            )
            if alert is not None:
                opened += 1
                open_by_key[(alert.rule, candidate.episode_key)] = alert
        if must_resolve:
            resolved = auto_resolve_cleared(
                session,
                patient_id=patient.id,
                evaluated_rules=EVALUATED_RULES,
                present=present,
                as_of=moment,
                clear_for=clear_for,
            )
    return opened, resolved


def _read_streams(session: Session, chunk: _Chunk) -> dict[str, Any]:
    """The chunk's rows of every stream, one query each (see module docstring)."""
    ids = [p.id for p in chunk.patients]
    upto = chunk.upto
    assert upto is not None
    if session.get_bind().dialect.name == "postgresql":
        home, other_rows = _spirometry_pg(session, chunk, ids, upto)
    else:
        S = SpirometrySession
        # the session's FEV1 grade, else its overall grade (`fev1_grade or session_grade`)
        grade = func.coalesce(func.nullif(S.fev1_grade, ""), S.session_grade)
        rows = _stream(
            session,
            (S.measured_at, S.fev1_l, grade, cast(S.device, Text)),
            S,
            S.measured_at,
            ids,
            upto,
            chunk.earliest("readings"),
            S.setting == "home",
        )
        home = HomeRows.of(
            chunk,
            [r[0] for r in rows],
            np.array([(r[1] - EPOCH) // ONE_US for r in rows], np.int64),
            np.array([r[2] for r in rows], np.float64),
            [r[3] for r in rows],
            [r[4] for r in rows],
        )
        del rows
        other_rows = _stream(
            session,
            (S.id, S.measured_at, S.fev1_l, S.fvc_l, S.fev1_grade, S.session_grade, S.setting, S.device),
            S,
            S.measured_at,
            ids,
            upto,
            chunk.earliest("readings"),
            S.setting != "home",
        )
    D = SirolimusDose
    doses = _group(
        _stream(
            session,
            (D.id, D.taken_at, D.status, D.dose_mg),
            D,
            D.taken_at,
            ids,
            upto,
            chunk.earliest("doses"),
        ),
        chunk,
        "doses",
        2,
    )
    R = RegimenEvent
    regimens = _group(
        _stream(
            session,
            (R.id, R.effective_at, R.kind, R.daily_dose_mg, R.drug_name),
            R,
            R.effective_at,
            ids,
            upto,
            None,
        ),
        chunk,
        None,
        2,
    )
    T = TroughResult
    troughs = _group(
        _stream(session, (T.id, T.drawn_at, T.value_ng_ml, T.last_dose_at), T, T.drawn_at, ids, upto, None),
        chunk,
        None,
        2,
    )
    E = SideEffectReport
    side = _group(
        _stream(
            session,
            (E.id, E.onset_at, E.term, E.severity, E.ctcae_grade, E.temperature_c, E.antibiotics_started),
            E,
            E.onset_at,
            ids,
            upto,
            chunk.earliest("side_effects"),
        ),
        chunk,
        "side_effects",
        2,
    )
    L = LamEvent
    events = _group(
        _stream(
            session, (L.id, L.occurred_at, L.kind), L, L.occurred_at, ids, upto, chunk.earliest("events")
        ),
        chunk,
        "events",
        2,
    )
    others = _group(other_rows, chunk, "readings", 2)
    return {
        "home": home,
        "others": others,
        "doses": doses,
        "regimens": regimens,
        "troughs": troughs,
        "side": side,
        "events": events,
    }


@dataclass
class HomeRows:
    """A chunk's home sessions as flat arrays sorted by (patient code, time);
    grades and device ids as codes (`grades[grade_code]`; equal device ids,
    equal `dev_code`)."""

    pcode: Any
    t_us: Any
    fev1: Any
    grade_code: Any
    grades: list[str | None]
    dev_code: Any

    @staticmethod
    def of(
        chunk: _Chunk,
        pids: Sequence[str],
        t_us: Any,
        fev1: Any,
        grades: Sequence[str | None],
        devices: Sequence[str | None],
    ) -> HomeRows:
        """From parallel columns in any order (rows of one patient at the same
        instant keep their order); `devices` is the device JSON as text."""
        m = len(pids)
        pcode = np.fromiter(map(chunk.code.__getitem__, pids), np.int64, m)
        grade_list: list[str | None] = list(set(grades))
        grade_index = {g: j for j, g in enumerate(grade_list)}
        grade_code = np.fromiter(map(grade_index.__getitem__, grades), np.int64, m)
        device_ids: dict[str | None, int] = {}
        device_of_text = {
            text_: device_ids.setdefault(
                device_id(json.loads(text_)) if text_ is not None else None, len(device_ids)
            )
            for text_ in set(devices)
        }
        dev_code = np.fromiter(map(device_of_text.__getitem__, devices), np.int64, m)
        order = np.lexsort((t_us, pcode))
        return HomeRows(
            pcode[order], t_us[order], fev1[order], grade_code[order], grade_list, dev_code[order]
        )


# All spirometry sessions of a chunk in one pass over the (patient_id, measured_at)
# index, unsorted (sorted in numpy), with the columns of clinic sessions only
# where the engine needs them.
_PG_SPIROMETRY = """
SELECT patient_id,
       CAST(EXTRACT(epoch FROM measured_at) * 1000000 AS BIGINT),
       fev1_l,
       COALESCE(NULLIF(fev1_grade, ''), session_grade),
       CAST(device AS TEXT),
       setting,
       CASE WHEN setting <> 'home' THEN id END,
       CASE WHEN setting <> 'home' THEN fvc_l END
FROM spirometry_sessions
WHERE patient_id = ANY(%s) AND deleted_at IS NULL AND measured_at <= %s AND measured_at >= %s
"""


def _spirometry_pg(
    session: Session, chunk: _Chunk, ids: list[str], upto: datetime
) -> tuple[HomeRows, Sequence[Any]]:
    """The chunk's home sessions (as `HomeRows`) and other sessions (rows as the
    SQLite query gives them) from one query, fetched in binary on the driver's
    own cursor: no row objects, no text parsing. The instant comes as integer
    microseconds (exact: timestamptz has microsecond resolution); the grade is
    `fev1_grade or session_grade`, which is what the engine reads."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor(binary=True) as cur:
        cur.execute(_PG_SPIROMETRY, (ids, upto, chunk.earliest("readings")))
        rows = cur.fetchall()
    home = [r for r in rows if r[5] == "home"]
    others = sorted(
        (
            (
                r[0],
                r[6],
                EPOCH + timedelta(microseconds=r[1]),
                r[2],
                r[7],
                r[3],
                r[3],
                r[5],
                None if r[4] is None else json.loads(r[4]),
            )
            for r in rows
            if r[5] != "home" and r[5] is not None
        ),
        key=lambda r: (chunk.code[r[0]], r[2]),
    )
    del rows
    m = len(home)
    return HomeRows.of(
        chunk,
        [r[0] for r in home],
        np.fromiter((r[1] for r in home), np.int64, m),
        np.fromiter((r[2] for r in home), np.float64, m),
        [r[3] for r in home],
        [r[4] for r in home],
    ), others


def _evaluate_in_memory(
    chunk: _Chunk, streams: dict[str, Any], cache: ChunkCache
) -> list[cm.Evaluation | None]:
    """Run the engine over a chunk's rows; None for a patient that failed."""
    patients = chunk.patients
    n = len(patients)
    home: HomeRows = streams.pop("home")
    others, doses, regimens = streams["others"], streams["doses"], streams["regimens"]
    troughs, side, events = streams["troughs"], streams["side"], streams["events"]

    # home sessions -> flat arrays, each row inside its patient's window
    since_us = np.array([(s - EPOCH) // ONE_US for s in chunk.since["readings"]], np.int64)
    upto_us = np.array([(m - EPOCH) // ONE_US for m in chunk.moment], np.int64)
    m = home.pcode.size
    pcode, t_us, fev1 = home.pcode, home.t_us, home.fev1
    grade_list, grade_code, dev_code = home.grades, home.grade_code, home.dev_code
    inside = (t_us >= since_us[pcode]) & (t_us <= upto_us[pcode])
    # trusted grade per distinct thresholds object (usually one per chunk) and
    # distinct grade
    distinct = list({id(th): th for th in chunk.thresholds}.values())
    th_index = {id(th): j for j, th in enumerate(distinct)}
    th_of_patient = np.array([th_index[id(th)] for th in chunk.thresholds], np.int64)
    table = np.array([[is_trusted(g, th) for g in grade_list] for th in distinct], bool)
    trusted = table[th_of_patient[pcode], grade_code] if m else np.zeros(0, bool)
    sel = np.flatnonzero(inside)
    ths = chunk.thresholds
    series = chunk_series(
        pcode[sel],
        t_us[sel],
        fev1[sel],
        np.ones(sel.size, bool),
        trusted[sel],
        dev_code[sel],
        zones=[p.timezone for p in patients],
        plausible_min=np.array([t.fev1_plausible_min_l for t in ths], np.float64),
        plausible_max=np.array([t.fev1_plausible_max_l for t in ths], np.float64),
        learning_days=np.array([t.learning_days for t in ths], np.int64),
        best_of_day=np.array([t.daily_aggregate == "best" for t in ths], bool),
        offsets=cache.offsets,
    )
    last_home_us = np.full(n, -1, np.int64)
    if sel.size:
        np.maximum.at(last_home_us, pcode[sel], t_us[sel])
    last_home = [None if us < 0 else EPOCH + timedelta(microseconds=int(us)) for us in last_home_us.tolist()]

    # regimens, segments and trend windows
    regs: list[list[cm.RegimenEvent]] = []
    segments: list[Segment] = []
    as_of_day = np.empty(n, np.int64)
    first_day = np.empty(n, np.int64)
    for i, p in enumerate(patients):
        rg = [
            cm.RegimenEvent(id=r[1], effective_at=r[2], kind=r[3], daily_dose_mg=r[4], drug_name=r[5])
            for r in regimens.get(i, ())
        ]
        regs.append(rg)
        th = ths[i]
        seg = treatment_segments(rg, p.timezone, th)[-1]
        segments.append(seg)
        as_of_day[i] = chunk.moment[i].astimezone(ZoneInfo(p.timezone)).date().toordinal()
        first_day[i] = max(as_of_day[i] - th.trend_window_days + 1, seg.first_day)
    common = max(set(ths), key=ths.count) if ths else DEFAULT_THRESHOLDS
    include = np.array([th == common for th in ths], bool)
    batch, exact = trend_screen(series, first_day, as_of_day, common, include=include)

    _prefetch_references(patients, series, exact, first_day, as_of_day)

    results: list[cm.Evaluation | None] = []
    for i, p in enumerate(patients):
        try:
            results.append(
                _evaluate_patient(
                    p,
                    chunk.moment[i],
                    ths[i],
                    series.of(i),
                    regs[i],
                    segments[i],
                    None if exact[i] else _screened_trend(batch, i, ths[i], segments[i]),
                    others.get(i, ()),
                    last_home[i],
                    doses.get(i, ()),
                    troughs.get(i, ()),
                    side.get(i, ()),
                    events.get(i, ()),
                )
            )
        except Exception:  # one patient's bad data must not stop the others
            log.exception("evaluation of patient %s failed", p.id)
            results.append(None)
    return results


def _prefetch_references(
    patients: Sequence[Patient], series: Any, exact: Any, first_day: Any, as_of_day: Any
) -> None:
    """Fill the GLI reference cache for the (age, height) points the rules will
    look up (start criterion today; %-predicted slope at the ends of an exactly
    computed trend window) in one array evaluation per sex."""
    points: dict[str, set[tuple[float, float]]] = defaultdict(set)
    for i, p in enumerate(patients):
        if p.date_of_birth is None or not p.height_cm:
            continue
        days = [int(as_of_day[i])] if p.treatment_status in ("untreated", "stopped") else []
        if exact[i]:
            part = series.of(i).between(int(first_day[i]), int(as_of_day[i]))
            if len(part) >= 2:
                days += [int(part.day[0]), int(part.day[-1])]
        for d in days:
            points[p.sex_at_birth].add((age_on(p.date_of_birth, date.fromordinal(d)), float(p.height_cm)))
    for sex, pts in points.items():
        gli.prefetch(sex, pts)


def _screened_trend(batch: Any, i: int, th: Thresholds, seg: Segment) -> tuple[cm.TrendResult, Segment]:
    """The trend of a patient the screen cleared of a rapid decline (batch numbers)."""

    def num(a: Any) -> float | None:
        v = float(a[i])
        return None if not np.isfinite(v) else round(v, 1)

    verdict = str(batch.verdict[i])
    assert verdict != "rapid_decline"
    return cm.TrendResult(
        slope_ml_per_year=num(batch.slope_ml_per_year),
        ci_low=num(batch.ci_low),
        ci_high=num(batch.ci_high),
        slope_pct_pred_per_year=None,
        n_readings=int(batch.n_readings[i]),
        span_days=float(batch.span_days[i]),
        verdict=verdict,
        confidence=th.trend_confidence,
    ), seg


def _evaluate_patient(
    patient: Patient,
    moment: datetime,
    th: Thresholds,
    series: Any,
    regimens: list[cm.RegimenEvent],
    segment: Segment,
    trend: tuple[cm.TrendResult, Segment] | None,
    other_rows: Sequence[Any],
    last_home: datetime | None,
    dose_rows: Sequence[Any],
    trough_rows: Sequence[Any],
    side_rows: Sequence[Any],
    event_rows: Sequence[Any],
) -> cm.Evaluation:
    facts = patient_facts(patient)
    # the engine reads raw sessions only for the latest clinic value and the
    # time of the latest home session; the home series is already built
    readings = [
        cm.SpirometryReading(
            id=r[1],
            measured_at=r[2],
            fev1_l=r[3],
            fvc_l=r[4],
            grade=r[5] or r[6],
            setting=r[7],
            device_id=device_id(r[8]),
        )
        for r in other_rows
    ]
    if last_home is not None:
        readings.append(cm.SpirometryReading(id="", measured_at=last_home, fev1_l=0.0, setting="home"))
    history = cm.PatientHistory(
        facts=facts,
        readings=readings,
        doses=[cm.DoseLog(id=r[1], taken_at=r[2], status=r[3], dose_mg=r[4]) for r in dose_rows],
        regimens=regimens,
        troughs=[
            cm.TroughResult(id=r[1], drawn_at=r[2], value_ng_ml=r[3], last_dose_at=r[4]) for r in trough_rows
        ],
        side_effects=[
            cm.SideEffectReport(
                id=r[1],
                onset_at=r[2],
                term=r[3],
                severity=r[4],
                ctcae_grade=r[5],
                temperature_c=r[6],
                antibiotics_started=bool(r[7]),
            )
            for r in side_rows
        ],
        events=[cm.LamEvent(id=r[1], occurred_at=r[2], kind=r[3]) for r in event_rows],
    )
    if trend is None:
        clinic = latest_clinic(readings, th, as_of=moment)
        trend = compute_trend(facts, series, regimens, moment, th, clinic, with_segments=False)
    return evaluate_prepared(history, series, as_of=moment, thresholds=th, with_segments=False, trend=trend)
