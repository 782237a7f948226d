"""lamtrack: home monitoring of sirolimus therapy for LAM."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, g, request

from backend.config import Settings

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(
        API_TITLE="lamtrack API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    logging.basicConfig(level=settings.log_level)

    from backend import limits, web
    from backend.audit import REQUEST_CONTEXT
    from backend.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    app.extensions["lamtrack.settings"] = settings
    app.extensions["lamtrack.engine"] = engine
    app.extensions["lamtrack.sessionmaker"] = make_sessionmaker(engine)
    web.init_app(app)
    from backend.triage.summaries import patient_summaries

    app.extensions["lamtrack.patient_summaries"] = patient_summaries
    limits.init_app(app, settings.rate_limit_storage_url)

    from backend.openapi import ProblemApi

    api = ProblemApi(
        app,
        spec_kwargs={
            "info": {
                "description": "Patient data, trends and care-team alerts for sirolimus therapy "
                "in LAM. Errors are application/problem+json (RFC 9457)."
            },
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
            },
            "security": [{"bearerAuth": []}],
        },
    )
    register_blueprints(api)
    web.init_errors(app)
    from backend import webui

    webui.init_app(app, settings)

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else str(uuid.uuid4())
        g.audit_context = REQUEST_CONTEXT.set((g.request_id, request.remote_addr))

    from backend.auth import permissions

    permissions.init_app(app)
    app.before_request(web.guard_body)

    @app.teardown_request
    def _end_audit_context(_exc: BaseException | None) -> None:
        token = g.pop("audit_context", None)
        if token is not None:
            REQUEST_CONTEXT.reset(token)

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = g.get("request_id", "")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    return app


def register_blueprints(api: Any) -> None:
    from backend import health
    from backend.alerts.routes import blp as alerts_blp
    from backend.auth.routes import blp as auth_blp
    from backend.evaluation import routes as trends
    from backend.fhir.routes import blp as fhir_blp
    from backend.patients.routes import blp as patients_blp
    from backend.patients.routes import registration
    from backend.reminders.routes import blp as reminders_blp
    from backend.reports.routes import blp as reports_blp
    from backend.streams import routes as stream_routes

    for name, schema in stream_routes.ITEM_SCHEMAS:
        if name not in api.spec.components.schemas:
            api.spec.components.schema(name, schema=schema)
    api.register_blueprint(health.blp)
    api.register_blueprint(auth_blp)
    api.register_blueprint(registration)
    api.register_blueprint(patients_blp)
    api.register_blueprint(stream_routes.blp)
    api.register_blueprint(trends.blp)
    api.register_blueprint(alerts_blp)
    api.register_blueprint(reminders_blp)
    api.register_blueprint(reports_blp)
    api.register_blueprint(fhir_blp)
