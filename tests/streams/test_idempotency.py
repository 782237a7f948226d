"""Idempotent ingest: replays and concurrent repeats create each item once; a
tombstoned item stays deleted after a replay, and the sync feed shows the tombstone."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from backend.streams.registry import STREAMS

API = "/api/v1"
AT = "2026-03-0{d}T08:30:00+01:00"
SPEC = {s.name: s for s in STREAMS}


def doses(n: int) -> list[dict[str, Any]]:
    return [
        {
            "client_id": str(uuid.uuid4()),
            "taken_at": AT.format(d=1 + i % 9),
            "status": "taken",
            "dose_mg": 2.0,
        }
        for i in range(n)
    ]


def stored_rows(db_sessionmaker: Any, stream: str, patient_id: str) -> list[tuple[str, str]]:
    model = SPEC[stream].model
    with db_sessionmaker() as session:
        return [
            tuple(r)
            for r in session.execute(select(model.client_id, model.id).where(model.patient_id == patient_id))
        ]


def test_replay_answers_duplicate_with_the_stored_ids(patient: Any, db_sessionmaker: Any) -> None:
    url = f"{API}/patients/me/doses"
    batch = {"items": doses(5)}
    first = patient.post(url, json=batch).get_json()["results"]
    assert [r["status"] for r in first] == ["created"] * 5
    with db_sessionmaker() as session:
        from backend.patients.models import Patient

        seq_before = session.get(Patient, patient.patient_id).change_seq
    again = patient.post(url, json=batch).get_json()["results"]
    assert [r["status"] for r in again] == ["duplicate"] * 5
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert [r["client_id"] for r in again] == [i["client_id"] for i in batch["items"]]
    rows = stored_rows(db_sessionmaker, "doses", patient.patient_id)
    assert sorted(rows) == sorted((r["client_id"], r["id"]) for r in first)
    with db_sessionmaker() as session:
        from backend.patients.models import Patient

        # A replay is not a change: the sync feed does not move.
        assert session.get(Patient, patient.patient_id).change_seq == seq_before


def test_repeat_inside_one_batch_is_a_duplicate(patient: Any, db_sessionmaker: Any) -> None:
    [one] = doses(1)
    results = patient.post(f"{API}/patients/me/doses", json={"items": [one, one]}).get_json()
    statuses = [r["status"] for r in results["results"]]
    assert statuses == ["created", "duplicate"]
    assert results["results"][0]["id"] == results["results"][1]["id"]
    assert len(stored_rows(db_sessionmaker, "doses", patient.patient_id)) == 1


def test_same_client_id_in_another_stream_or_for_another_patient_is_separate(
    patient: Any, make_patient: Any, clinician: Any, db_sessionmaker: Any
) -> None:
    other = make_patient(clinician)
    [item] = doses(1)
    a = patient.post(f"{API}/patients/me/doses", json={"items": [item]}).get_json()["results"]
    b = other.post(f"{API}/patients/me/doses", json={"items": [item]}).get_json()["results"]
    assert a[0]["status"] == b[0]["status"] == "created"
    assert a[0]["id"] != b[0]["id"]


@pytest.mark.parametrize("workers", [8])
def test_same_batch_from_several_threads_creates_each_item_once(
    app: Flask, patient: Any, db_sessionmaker: Any, workers: int
) -> None:
    url = f"{API}/patients/me/doses"
    items = doses(40)
    barrier = threading.Barrier(workers)
    answers: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def upload(n: int) -> None:
        client = app.test_client()  # one client per thread, as separate phones would be
        try:
            barrier.wait(timeout=30)
            resp = client.post(url, json={"items": items}, headers=patient.headers)
            answers[n] = (resp.status_code, resp.get_json())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(a is not None for a in answers)
    for status, body in answers:
        assert status == 200, body
    created: dict[str, set[str]] = {}
    ids: dict[str, set[str]] = {}
    for _, body in answers:
        for item, result in zip(items, body["results"], strict=True):
            assert result["client_id"] == item["client_id"]
            assert result["status"] in ("created", "duplicate"), result
            ids.setdefault(item["client_id"], set()).add(result["id"])
            if result["status"] == "created":
                created.setdefault(item["client_id"], set()).add(result["id"])
    # Each item created exactly once, and every thread was told the same id.
    assert {k: len(v) for k, v in created.items()} == {i["client_id"]: 1 for i in items}
    assert all(len(v) == 1 for v in ids.values())
    rows = stored_rows(db_sessionmaker, "doses", patient.patient_id)
    assert len(rows) == len(items)
    assert {c: {i} for c, i in rows} == ids
    # Sequence numbers of the feed stay unique and gap-free.
    with db_sessionmaker() as session:
        model = SPEC["doses"].model
        seqs = sorted(session.scalars(select(model.seq).where(model.patient_id == patient.patient_id)))
    assert seqs == list(range(1, len(items) + 1))


def test_overlapping_batches_from_threads(app: Flask, patient: Any, db_sessionmaker: Any) -> None:
    """Different batches sharing some items, at once: the union is stored once."""
    url = f"{API}/patients/me/doses"
    pool = doses(30)
    batches = [pool[i : i + 15] for i in range(0, 16, 5)]  # 0-15, 5-20, 10-25, 15-30
    barrier = threading.Barrier(len(batches))
    statuses: list[int] = []

    def upload(batch: list[dict[str, Any]]) -> None:
        client = app.test_client()
        barrier.wait(timeout=30)
        statuses.append(client.post(url, json={"items": batch}, headers=patient.headers).status_code)

    threads = [threading.Thread(target=upload, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert statuses == [200] * len(batches)
    rows = stored_rows(db_sessionmaker, "doses", patient.patient_id)
    assert sorted(c for c, _ in rows) == sorted(i["client_id"] for i in pool)


def test_tombstone_survives_replay_and_appears_in_the_feed(patient: Any, db_sessionmaker: Any) -> None:
    url = f"{API}/patients/me/spirometry"
    items = [{"client_id": str(uuid.uuid4()), "measured_at": AT.format(d=d), "fev1_l": 2.4} for d in (1, 2)]
    created = patient.post(url, json={"items": items}).get_json()["results"]
    gone, kept = created[0]["id"], created[1]["id"]
    feed = patient.get(f"{API}/patients/me/changes").get_json()
    cursor = feed["next_cursor"]
    assert {c["id"] for c in feed["items"]} == {gone, kept}

    assert patient.delete(f"{url}/{gone}").status_code == 204
    replay = patient.post(url, json={"items": items}).get_json()["results"]
    assert [r["status"] for r in replay] == ["duplicate", "duplicate"]
    assert [r["id"] for r in replay] == [gone, kept]

    listed = patient.get(url).get_json()["items"]
    assert [r["id"] for r in listed] == [kept]
    assert patient.get(f"{url}/{gone}").status_code == 404
    model = SPEC["spirometry"].model
    with db_sessionmaker() as session:
        row = session.get(model, gone)
        assert row is not None and row.deleted_at is not None
        assert (
            session.scalar(
                select(func.count()).select_from(model).where(model.patient_id == patient.patient_id)
            )
            == 2
        )

    changes = patient.get(f"{API}/patients/me/changes", query_string={"cursor": cursor}).get_json()
    assert [(c["id"], c["op"], c["data"]) for c in changes["items"]] == [(gone, "delete", None)]
    assert changes["items"][0]["client_id"] == items[0]["client_id"]
    assert changes["items"][0]["stream"] == "spirometry"
    # From the start, the feed shows each item once, in its latest state.
    full = patient.get(f"{API}/patients/me/changes").get_json()["items"]
    assert {c["id"]: c["op"] for c in full} == {gone: "delete", kept: "upsert"}
    # Deleting again changes nothing more.
    assert patient.delete(f"{url}/{gone}").status_code == 204
    again = patient.get(
        f"{API}/patients/me/changes", query_string={"cursor": changes["next_cursor"]}
    ).get_json()
    assert again["items"] == []


def test_concurrent_replays_do_not_revive_a_tombstone(app: Flask, patient: Any) -> None:
    url = f"{API}/patients/me/doses"
    items = doses(3)
    created = patient.post(url, json={"items": items}).get_json()["results"]
    assert patient.delete(f"{url}/{created[0]['id']}").status_code == 204
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def replay() -> None:
        client = app.test_client()
        barrier.wait(timeout=30)
        answers.append(client.post(url, json={"items": items}, headers=patient.headers).get_json())

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(answers) == 4
    for body in answers:
        assert [r["status"] for r in body["results"]] == ["duplicate"] * 3
    listed = {r["id"] for r in patient.get(url).get_json()["items"]}
    assert listed == {created[1]["id"], created[2]["id"]}
