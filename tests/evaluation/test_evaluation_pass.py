"""The evaluation pass (`evaluate_patients`): its alerts are the engine's
candidates for what each patient's stored data show, whatever the chunking, on a
simulated cohort, on SQLite and PostgreSQL (`--db=postgres`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert, AlertEvent
from backend.audit import AuditEvent
from backend.clinical.evaluate import evaluate_patient
from backend.clinical.simulation import CohortConfig, simulate_patient
from backend.config import Settings
from backend.db import posix_seconds
from backend.evaluation.loading import STREAMS, _select, end_of_local_day, load_history
from backend.evaluation.runner import evaluate_patients
from backend.notify.models import OutboxMessage
from backend.patients.models import Patient
from backend.patients.services import thresholds_for
from backend.streams.events.models import LamEvent
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.troughs.models import TroughResult
from tests.factories import ensure_clinician, ensure_team

N_PATIENTS = 40
ZONES = ("Europe/London", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC")


def _common(pid: str, seq: int, moment: datetime, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "client_id": str(uuid.uuid4()),
        "patient_id": pid,
        "seq": seq,
        "utc_offset_minutes": 0,
        "created_at": now,
    }


def load_cohort(factory: sessionmaker[Session], n: int = N_PATIENTS, seed: int = 7) -> list[str]:
    """Simulated patients (two years of data) with some edge cases mixed in:
    several time zones, graded/ungraded and duplicate sessions, a second
    device, rule overrides, deleted rows, lung events and a patient with no data."""
    cfg = CohortConfig(n_patients=n, seed=seed, days=400, start=date(2024, 11, 1))
    children = np.random.SeedSequence(seed).spawn(n)
    now = datetime(2026, 2, 1, tzinfo=UTC)
    ids: list[str] = []
    with factory.begin() as session:
        team = ensure_team(session, name="Batch team", settings={"email_include_details": True})
        for k in (1, 2):
            ensure_clinician(
                session,
                team_id=team.id,
                email=f"doc{k}@clinic.example",
                password="correct horse battery staple",
            )
        rows: dict[Any, list[dict[str, Any]]] = {
            m: []
            for m in (
                SpirometrySession,
                SirolimusDose,
                RegimenEvent,
                TroughResult,
                SideEffectReport,
                LamEvent,
            )
        }
        for i in range(n):
            sim = simulate_patient(np.random.default_rng(children[i]), cfg, i)
            h = sim.history
            f = h.facts
            pid = str(uuid.uuid4())
            ids.append(pid)
            overrides: dict[str, Any] = {}
            if i % 13 == 5:
                overrides = {"rapid_decline_ml_per_year": -60.0}
            session.add(
                Patient(
                    id=pid,
                    care_team_id=team.id,
                    sex_at_birth=f.sex_at_birth,
                    date_of_birth=f.date_of_birth,
                    height_cm=f.height_cm,
                    lam_type=f.lam_type,
                    timezone=ZONES[i % len(ZONES)] if i % 3 else f.timezone,
                    treatment_status=f.treatment_status,
                    trough_target_low=5.0,
                    trough_target_high=15.0,
                    expected_sessions_per_week=f.expected_sessions_per_week,
                    rule_overrides=overrides,
                    change_seq=1,
                    data_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            if i == n - 1:
                continue  # a patient with no data at all
            seq = 0
            for k, r in enumerate(h.readings):
                seq += 1
                device = {"serial": r.device_id} if r.device_id else None
                if i % 4 == 1 and k > len(h.readings) // 2:
                    device = {"model": "second-device"}
                grade, session_grade = r.grade, None
                if i % 5 == 2 and k % 7 == 0:
                    grade = "E"  # untrusted
                if i % 7 == 3 and k % 5 == 0:  # only an overall session grade
                    grade, session_grade = (None, "D") if k % 2 else ("", "B")
                row = {
                    **_common(pid, seq, r.measured_at, now),
                    "measured_at": r.measured_at,
                    "setting": r.setting,
                    "fev1_l": r.fev1_l,
                    "fvc_l": r.fvc_l,
                    "fev1_grade": grade,
                    "session_grade": session_grade,
                    "device": device,
                    "deleted_at": now if k % 97 == 3 else None,
                }
                rows[SpirometrySession].append(row)
                if k % 53 == 0:  # an exact duplicate upload
                    seq += 1
                    rows[SpirometrySession].append({**row, **_common(pid, seq, r.measured_at, now)})
            for d in h.doses:
                seq += 1
                rows[SirolimusDose].append(
                    {
                        **_common(pid, seq, d.taken_at, now),
                        "taken_at": d.taken_at,
                        "status": d.status,
                        "dose_mg": d.dose_mg,
                    }
                )
            for g in h.regimens:
                seq += 1
                rows[RegimenEvent].append(
                    {
                        **_common(pid, seq, g.effective_at, now),
                        "effective_at": g.effective_at,
                        "kind": g.kind,
                        "daily_dose_mg": g.daily_dose_mg,
                        "drug_name": g.drug_name,
                        "recorded_by_role": "clinician",
                    }
                )
            for t in h.troughs:
                seq += 1
                rows[TroughResult].append(
                    {
                        **_common(pid, seq, t.drawn_at, now),
                        "drawn_at": t.drawn_at,
                        "value_ng_ml": t.value_ng_ml,
                        "last_dose_at": t.last_dose_at,
                        "assay_method": "lc_ms_ms",
                    }
                )
            for s in h.side_effects:
                seq += 1
                rows[SideEffectReport].append(
                    {
                        **_common(pid, seq, s.onset_at, now),
                        "onset_at": s.onset_at,
                        "term": s.term,
                        "severity": s.severity,
                        "ctcae_grade": s.ctcae_grade,
                        "temperature_c": s.temperature_c,
                        "antibiotics_started": s.antibiotics_started,
                    }
                )
            if i % 6 == 0:
                seq += 1
                rows[LamEvent].append(
                    {
                        **_common(pid, seq, now, now),
                        "occurred_at": datetime(2025, 11, 20, 8, tzinfo=UTC),
                        "kind": "pneumothorax",
                    }
                )
        session.flush()
        for model, items in rows.items():
            if items:
                session.execute(insert(model), items)
    return ids


def _wipe_alerts(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        session.execute(delete(OutboxMessage))
        session.execute(delete(AlertEvent))
        session.execute(delete(AuditEvent).where(AuditEvent.resource_type == "alert"))
        session.execute(delete(Alert))
        session.execute(update(Patient).values(evaluated_at=None))


def _snapshot(factory: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with factory() as session:
        alerts = session.scalars(select(Alert)).all()
        snap = sorted(
            (
                a.patient_id,
                a.rule,
                a.episode_key,
                a.status,
                a.severity,
                json.dumps(a.numbers, sort_keys=True),
                a.explanation,
                a.opened_at.isoformat(),
                a.last_seen_at.isoformat(),
                a.resolved_at and a.resolved_at.isoformat(),
                a.open_episode_key,
            )
            for a in alerts
        )
        events = sorted(
            session.execute(
                select(Alert.patient_id, Alert.rule, AlertEvent.action, AlertEvent.at).join(
                    AlertEvent, AlertEvent.alert_id == Alert.id
                )
            ).all()
        )
        # audit rows and emails, with the random alert id replaced by the episode
        name = {a.id: f"{a.patient_id}/{a.rule}/{a.episode_key}/{a.opened_at.isoformat()}" for a in alerts}
        audit = sorted(
            (name[r.resource_id or ""], r.action, r.actor_role or "")
            for r in session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "alert"))
        )

        def scrub(text: str | None, alert_id: str) -> str:
            return (text or "").replace(alert_id, "<id>").replace(alert_id[:8].upper(), "<ref>")

        emails = sorted(
            (
                name[m.alert_id or ""],
                m.recipient,
                m.kind,
                str(m.urgent),
                scrub(m.subject, m.alert_id or ""),
                scrub(m.body_text, m.alert_id or ""),
                scrub(m.body_html, m.alert_id or ""),
                m.created_at.isoformat(),
                m.next_attempt_at.isoformat(),
            )
            for m in session.scalars(select(OutboxMessage))
        )
    return snap + [tuple(str(x) for x in e) for e in events] + audit + emails


# (as_of, replay, full): a first full pass, a replay of a past calendar date
# (end of that day in each patient's zone), a later pass where readings have
# stopped (overdue, auto-resolve after the clear period), an incremental pass.
PASSES: list[tuple[datetime | date, bool, bool]] = [
    (datetime(2025, 12, 1, 23, 0, tzinfo=UTC), False, True),
    (date(2025, 10, 15), True, True),
    (datetime(2026, 1, 20, 6, 0, tzinfo=UTC), False, True),
    (datetime(2026, 1, 21, 6, 0, tzinfo=UTC), False, False),
]


def _run(fn: Any, factory: sessionmaker[Session], settings: Settings, **kw: Any) -> list[dict[str, int]]:
    from backend.clinical import gli

    gli._LMS_CACHE.clear()  # each pass computes its own reference values
    out = []
    for as_of, replay, full in PASSES:
        out.append(fn(factory, settings=settings, as_of=as_of, replay=replay, full=full, **kw))
    return out


def _open_alerts(factory: sessionmaker[Session]) -> dict[str, set[tuple[str, str, str]]]:
    out: dict[str, set[tuple[str, str, str]]] = {}
    with factory() as session:
        for a in session.scalars(select(Alert).where(Alert.open_episode_key.is_not(None))):
            out.setdefault(a.patient_id, set()).add((a.rule, a.episode_key, a.severity))
    return out


def test_chunking_does_not_change_what_the_passes_write(
    db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    load_cohort(db_sessionmaker)
    whole = _run(evaluate_patients, db_sessionmaker, settings, chunk_size=500)
    expected = _snapshot(db_sessionmaker)
    assert sum(r["opened"] for r in whole) > 10  # the cohort does raise alerts
    assert sum(r["resolved"] for r in whole) > 0  # and resolves some when they clear
    assert all(r["errors"] == 0 for r in whole)
    assert sum(len(row) == 9 for row in expected) > 10  # and emails them
    assert len({row[1] for row in expected if len(row) > 5}) >= 3  # of several rules
    _wipe_alerts(db_sessionmaker)
    small = _run(evaluate_patients, db_sessionmaker, settings, chunk_size=7)
    assert small == whole
    assert _snapshot(db_sessionmaker) == expected


def test_open_alerts_are_the_engines_candidates_on_each_patients_own_rows(
    db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    """After a pass, each patient's open alerts are exactly what the engine
    raises on her rows; the rows the chunk's queries gave her are her live rows
    inside her own window and as-of time (checked against plain per-patient
    ORM reads); a second pass at the same moment opens nothing and changes nothing."""
    ids = load_cohort(db_sessionmaker, n=14)
    as_of = date(2025, 12, 1)  # the end of that day in each patient's zone
    first = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True, chunk_size=5)
    assert first["patients"] == len(ids) and first["errors"] == 0 and first["opened"] > 5
    opened = _open_alerts(db_sessionmaker)
    with db_sessionmaker() as session:
        for patient in session.scalars(select(Patient)):
            moment = end_of_local_day(as_of, patient.timezone)
            th = thresholds_for(session, patient)
            history = load_history(session, patient, as_of=moment, thresholds=th)
            for stream in STREAMS:
                since = moment - timedelta(days=stream.days_back(th)) if stream.days_back else None
                live = [
                    r.id
                    for r in session.scalars(
                        select(stream.model).where(
                            stream.model.patient_id == patient.id, stream.model.deleted_at.is_(None)
                        )
                    )
                    if getattr(r, stream.time_col.key) <= moment
                    and (since is None or getattr(r, stream.time_col.key) >= since)
                ]
                assert sorted(x.id for x in getattr(history, stream.field)) == sorted(live), stream.field
            candidates = evaluate_patient(history, as_of=moment, thresholds=th).candidates
            assert opened.get(patient.id, set()) == {(c.rule, c.episode_key, c.severity) for c in candidates}
    before = _snapshot(db_sessionmaker)
    again = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True, replay=True)
    assert again == {"patients": len(ids), "opened": 0, "resolved": 0, "errors": 0}
    assert _snapshot(db_sessionmaker) == before


def test_one_patient_failing_in_the_engine_does_not_stop_the_chunk(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = load_cohort(db_sessionmaker, n=6)
    import backend.clinical.evaluate as engine

    real = engine.evaluate_patient
    bad = sorted(ids)[2]

    def flaky(history: Any, **kw: Any) -> Any:
        if history.facts.patient_id == bad:
            raise RuntimeError("bad data")
        return real(history, **kw)

    monkeypatch.setattr(engine, "evaluate_patient", flaky)
    as_of = datetime(2025, 12, 1, 23, 0, tzinfo=UTC)
    summary = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True)
    assert summary["errors"] == 1 and summary["patients"] == 5
    with db_sessionmaker() as session:
        evaluated = set(session.scalars(select(Patient.id).where(Patient.evaluated_at.is_not(None))))
    assert evaluated == set(ids) - {bad}
    assert bad not in _open_alerts(db_sessionmaker)
    # the next incremental pass picks up only the patient that failed
    monkeypatch.setattr(engine, "evaluate_patient", real)
    again = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of + timedelta(hours=1))
    assert again["patients"] == 1 and again["errors"] == 0


def test_a_chunk_that_cannot_be_read_is_left_for_the_next_pass(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = load_cohort(db_sessionmaker, n=8)
    as_of = datetime(2025, 12, 1, 23, 0, tzinfo=UTC)
    import backend.evaluation.runner as runner

    real = runner.load_histories
    calls: list[list[str]] = []

    def failing_first(session: Session, patients: Any, **kw: Any) -> Any:
        calls.append([p.id for p in patients])
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return real(session, patients, **kw)

    monkeypatch.setattr(runner, "load_histories", failing_first)
    summary = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True, chunk_size=3)
    assert len(calls) == 3  # ceil(8 / 3) chunks; the first failed, the others ran
    assert summary["errors"] == 3 and summary["patients"] == 5
    assert sorted(ids) == sorted(i for chunk in calls for i in chunk)
    with db_sessionmaker() as session:
        evaluated = set(session.scalars(select(Patient.id).where(Patient.evaluated_at.is_not(None))))
    assert evaluated == set(ids) - set(calls[0])
    assert not set(calls[0]) & set(_open_alerts(db_sessionmaker))
    # the next incremental pass evaluates exactly the chunk that failed
    monkeypatch.setattr(runner, "load_histories", real)
    again = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of + timedelta(hours=1))
    assert again["patients"] == 3 and again["errors"] == 0


def test_a_patient_whose_new_alerts_cannot_be_written_fails_alone(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each patient's alerts are written in her own SAVEPOINT: only the
    patient at fault is left out, the others' alerts and emails are as in a
    clean pass."""
    load_cohort(db_sessionmaker, n=12)
    as_of = datetime(2025, 12, 1, 23, 0, tzinfo=UTC)
    reference = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True)
    expected = _snapshot(db_sessionmaker)
    with db_sessionmaker() as session:
        counts = dict(
            session.execute(select(Alert.patient_id, func.count()).group_by(Alert.patient_id)).all()
        )
        emailed = set(session.scalars(select(Alert.patient_id).where(Alert.severity != "digest")))
    # a patient with new alerts, one of them emailed (digest-severity alerts are not)
    bad = max(emailed, key=lambda pid: (counts[pid], pid))
    _wipe_alerts(db_sessionmaker)
    import backend.alerts.services as services

    real = services.alert_emails

    def failing(alert: Alert, **kw: Any) -> Any:
        if alert.patient_id == bad:
            raise RuntimeError("cannot render")
        return real(alert, **kw)

    monkeypatch.setattr(services, "alert_emails", failing)
    summary = evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True)
    assert summary["errors"] == 1 and summary["patients"] == reference["patients"] - 1
    assert summary["opened"] == reference["opened"] - counts[bad]
    assert _snapshot(db_sessionmaker) == [row for row in expected if bad not in str(row[0])]
    with db_sessionmaker() as session:
        evaluated = set(session.scalars(select(Patient.id).where(Patient.evaluated_at.is_not(None))))
        assert bad not in evaluated and len(evaluated) == reference["patients"] - 1


def test_a_chunks_alerts_are_read_and_written_with_a_few_statements_whatever_its_size(
    db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    """The alerts of a chunk's patients are read once (their unresolved alerts,
    the episodes clinicians resolved) and written together in one SAVEPOINT:
    the statements on alerts per chunk do not grow with the patients who raise,
    refresh or resolve alerts (first pass, replay, a later pass that resolves)."""
    from sqlalchemy import event

    load_cohort(db_sessionmaker, n=16)
    engine = db_sessionmaker.kw["bind"]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        counts = []
        for as_of, replay, full in PASSES[:3]:
            statements.clear()
            summary = evaluate_patients(
                db_sessionmaker, settings=settings, as_of=as_of, replay=replay, full=full, chunk_size=500
            )
            assert summary["errors"] == 0
            counts.append(
                (
                    summary,
                    sum(s.startswith("savepoint") for s in statements),
                    sum(s.startswith("select") and " from alerts" in s for s in statements),
                    sum(s.startswith("update alerts") for s in statements),
                )
            )
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    first, _, later = counts
    assert first[0]["opened"] > 5 and later[0]["resolved"] > 0  # the passes do write
    for _summary, savepoints, alert_reads, _updates in counts:
        assert savepoints == 1  # one chunk, all its writes together
        # the chunk's unresolved alerts, the clinician-resolved episodes, the
        # new ids read back
        assert alert_reads <= 3


def test_sessions_stored_out_of_time_order_are_read_in_time_order(
    db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    """The chunk's spirometry query has no ORDER BY (sorting ~100,000 rows made
    PostgreSQL spill to disk): each patient's rows are put in time order by the
    loader. Stored newest first, a patient's sessions still reach the engine
    oldest first, and her evaluation is the one of her sessions in order."""
    ids = load_cohort(db_sessionmaker, n=3)
    as_of = datetime(2025, 12, 1, tzinfo=UTC)
    with db_sessionmaker.begin() as session:
        table = SpirometrySession.__table__
        rows = [dict(r._mapping) for r in session.execute(select(table).where(table.c.patient_id == ids[0]))]
        assert len(rows) > 100
        session.execute(delete(table).where(table.c.patient_id == ids[0]))
        for row in sorted(rows, key=lambda r: r["measured_at"], reverse=True):
            session.execute(insert(table).values(**row))
    if db_sessionmaker.kw["bind"].dialect.name == "postgresql":
        with db_sessionmaker.begin() as session:  # statistics: a third of the rows, read by a scan
            session.execute(text("ANALYZE spirometry_sessions"))
    with db_sessionmaker() as session:
        query = _select(next(s for s in STREAMS if s.field == "readings"), [ids[0]], as_of, ordered=False)
        stored = [row.measured_at for row in session.execute(query)]
        if session.get_bind().dialect.name == "postgresql":  # SQLite reads them by its time index
            assert stored != sorted(stored)  # the query hands them back out of order
        patient = session.get_one(Patient, ids[0])
        th = thresholds_for(session, patient)
        history = load_history(session, patient, as_of=as_of, thresholds=th)
        times = [r.measured_at for r in history.readings]
        assert len(times) > 100 and times == sorted(times)
        in_order = evaluate_patient(
            replace(history, readings=sorted(history.readings, key=lambda r: r.measured_at)),
            as_of=as_of,
            thresholds=th,
        )
        assert evaluate_patient(history, as_of=as_of, thresholds=th) == in_order


def test_spirometry_times_are_read_to_the_microsecond(db_sessionmaker: sessionmaker[Session]) -> None:
    """The loader reads session times as POSIX seconds computed by the database
    (`posix_seconds`): each is `timestamp()` of the stored moment, read back as
    that moment to the microsecond, and the as-of bound keeps a session at it
    and drops one a microsecond after it."""
    ids = load_cohort(db_sessionmaker, n=2)
    pid = ids[0]
    as_of = datetime(2025, 12, 1, 12, 0, 0, 500000, tzinfo=UTC)
    micro = timedelta(microseconds=1)
    rng = np.random.default_rng(11)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    moments = [
        as_of - micro,
        as_of,
        as_of + micro,
        datetime(2025, 10, 26, 0, 59, 59, 999999, tzinfo=UTC),  # Europe's clocks go back at 01:00
        datetime(2025, 11, 30, 23, 59, 59, 999600, tzinfo=UTC),  # rounds up in milliseconds
        datetime(2025, 11, 30, 8, 0, tzinfo=UTC),
        datetime(2025, 3, 9, 7, 0, 0, 1, tzinfo=UTC),
        *(start + timedelta(microseconds=int(u)) for u in rng.integers(0, 700 * 86_400_000_000, 200)),
    ]
    now = datetime(2026, 2, 1, tzinfo=UTC)
    added = [
        {
            **_common(pid, 100_000 + k, m, now),
            "measured_at": m,
            "setting": "home",
            "fev1_l": 2.0,
            "fvc_l": 2.8,
            "device": {"serial": "exact-times"},
        }
        for k, m in enumerate(moments)
    ]
    with db_sessionmaker.begin() as session:
        session.execute(insert(SpirometrySession), added)
    S = SpirometrySession
    with db_sessionmaker() as session:
        read = session.execute(
            select(S.id, S.measured_at, posix_seconds(S.measured_at)).where(S.patient_id == pid)
        )
        stored = {}
        for id_, moment, seconds in read:
            assert seconds == moment.timestamp(), (moment, seconds)
            stored[id_] = moment
        patient = session.get_one(Patient, pid)
        history = load_history(session, patient, as_of=as_of, thresholds=thresholds_for(session, patient))
    got = {r.id: r.measured_at for r in history.readings}
    expected = {a["id"]: a["measured_at"] for a in added if a["measured_at"] <= as_of}
    assert len(expected) > 150 and expected.items() <= got.items()
    assert added[1]["id"] in got and added[2]["id"] not in got
    assert all(stored[id_] == m and m.tzinfo is UTC for id_, m in got.items())
