from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView
from marshmallow import fields
from sqlalchemy import text

from backend.clinical.catalog import SIDE_EFFECT_TERMS
from backend.db import utcnow
from backend.errors import ServiceUnavailable
from backend.scheduler.lease import last_heartbeat
from backend.schemas import StrictSchema
from backend.streams.side_effects.schemas import SideEffectTermSchema
from backend.web import Blueprint, db, settings

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Service health and catalogs")


class HealthSchema(StrictSchema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


@blp.route("/healthz")
class Health(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, Any]:
        """Liveness: the process answers"""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, description="The database or the scheduler is not ready")
    def get(self) -> dict[str, Any]:
        """Readiness: the database answers and, once a scheduler has run, its heartbeat is fresh"""
        session = db()
        session.execute(text("SELECT 1"))
        checks = {"database": "ok"}
        heartbeat = last_heartbeat(session)
        if heartbeat is None:
            checks["scheduler"] = "never seen"
        elif utcnow() - heartbeat > timedelta(seconds=settings().heartbeat_stale_seconds):
            raise ServiceUnavailable(
                "The scheduler's heartbeat is stale.", errors={"scheduler": heartbeat.isoformat()}
            )
        else:
            checks["scheduler"] = "ok"
        return {"status": "ok", "checks": checks}


@blp.route("/side-effect-terms")
class SideEffectTerms(MethodView):
    @blp.doc(security=[])
    @blp.response(200, SideEffectTermSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """The side-effect terms a report may use (CTCAE v5 with PRO-CTCAE items)"""
        return [
            {"code": t.code, "ctcae_term": t.ctcae_term, "pro_ctcae_item": t.pro_ctcae_item}
            for t in SIDE_EFFECT_TERMS.values()
        ]
