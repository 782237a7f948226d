"""Alerts raised in the request that stores a report: an urgent side effect or a
LAM event is put in front of the care team (alert and email in the same
transaction) and the app is told at once what to advise the patient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.patients.services import thresholds_for
from backend.streams import AfterHook, IngestContext


def alert_on_insert(to_clinical: Callable[[dict[str, Any]], Any],
                    rule: Callable[[Any, Any], Any]) -> AfterHook:
    def hook(ctx: IngestContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from backend.alerts.services import raise_alert

        thresholds = thresholds_for(ctx.session, ctx.patient)
        extras: dict[str, dict[str, Any]] = {}
        for row in rows:
            candidate = rule(to_clinical(row), thresholds)
            if candidate is None:
                continue
            alert = raise_alert(ctx.session, patient=ctx.patient, candidate=candidate,
                                as_of=ctx.now)
            extras[row["id"]] = {"alert_id": alert.id if alert is not None else None,
                                 "patient_message": candidate.patient_message}
        return extras

    return hook
