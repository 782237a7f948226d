"""Alerts raised in the request that stores a report: an urgent side effect or a
LAM event is put in front of the care team (alert and email in the same
transaction) and the app is told at once what to advise the patient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.alerts.models import Alert
from backend.alerts.services import raise_alert
from backend.config import Settings
from backend.patients.models import Patient
from backend.patients.services import thresholds_for


class InsertContext(Protocol):
    """What a stream's insert hook is given (a stream's `IngestContext`)."""

    @property
    def session(self) -> Session: ...
    @property
    def patient(self) -> Patient: ...
    @property
    def now(self) -> datetime: ...
    @property
    def settings(self) -> Settings: ...


OnInsert = Callable[[InsertContext, list[dict[str, Any]]], dict[str, dict[str, Any]]]


def alert_on_insert(
    to_clinical: Callable[[dict[str, Any]], Any],
    rule: Callable[..., Any],
    recent: Callable[[InsertContext, list[dict[str, Any]]], list[Any]] | None = None,
) -> OnInsert:
    """`rule(item, thresholds)`, or `rule(item, thresholds, context)` with `recent`,
    which loads what else the rule must see (the patient's other recent reports)."""

    def hook(ctx: InsertContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        thresholds = thresholds_for(ctx.session, ctx.patient)
        context = None if recent is None else recent(ctx, rows)
        extras: dict[str, dict[str, Any]] = {}
        for row in rows:
            item = to_clinical(row)
            candidate = rule(item, thresholds) if context is None else rule(item, thresholds, context)
            if candidate is None:
                continue
            alert = raise_alert(
                ctx.session, patient=ctx.patient, candidate=candidate, as_of=ctx.now, settings=ctx.settings
            )
            extras[row["id"]] = {
                "alert_id": alert.id if alert is not None else None,
                "patient_message": candidate.patient_message,
            }
        return extras

    return hook


def alert_on_duplicate(
    to_clinical: Callable[[dict[str, Any]], Any],
    rule: Callable[..., Any],
    recent: Callable[[InsertContext, list[dict[str, Any]]], list[Any]] | None = None,
) -> OnInsert:
    """For a report sent again (its first answer may never have reached the
    phone): the same `alert_id` and `patient_message` as the first answer, from
    the alert of the report's episode. Nothing is raised again."""

    def hook(ctx: InsertContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        thresholds = thresholds_for(ctx.session, ctx.patient)
        context = None if recent is None else recent(ctx, rows)
        extras: dict[str, dict[str, Any]] = {}
        for row in rows:
            item = to_clinical(row)
            candidate = rule(item, thresholds) if context is None else rule(item, thresholds, context)
            if candidate is None:
                continue
            alert_id = ctx.session.scalars(
                select(Alert.id)
                .where(
                    Alert.patient_id == ctx.patient.id,
                    Alert.rule == candidate.rule,
                    Alert.episode_key == candidate.episode_key,
                )
                .order_by(Alert.opened_at.desc())
                .limit(1)
            ).first()
            extras[row["id"]] = {"alert_id": alert_id, "patient_message": candidate.patient_message}
        return extras

    return hook
