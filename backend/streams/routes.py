"""HTTP routes of the six streams and the /changes feed, made from their specs."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from backend.audit import record_audit
from backend.auth.permissions import current_principal
from backend.db import utcnow
from backend.errors import Unprocessable
from backend.patients.access import load_patient_for, record_denied
from backend.schemas import (
    PageArgs,
    PageSchema,
    StrictSchema,
    Text,
    aware_datetime,
    decode_cursor,
    encode_cursor,
)
from backend.streams import ingest as streams
from backend.streams.records import StreamSpec
from backend.web import Blueprint, db, settings

blp = Blueprint(
    "streams",
    __name__,
    url_prefix="/api/v1",
    description="Patient data streams: batch upload, paged reads, deletion, sync",
)


class BatchResultSchema(StrictSchema):
    client_id = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(["created", "duplicate", "invalid"]))
    id = fields.String(required=True, allow_none=True)
    errors = fields.Dict(required=True, allow_none=True)
    alert_id = fields.String(allow_none=True)
    patient_message = fields.String(allow_none=True)


class BatchAnswerSchema(StrictSchema):
    results = fields.List(fields.Nested(BatchResultSchema), required=True)


class WindowArgs(PageArgs):
    since = aware_datetime(load_default=None)
    until = aware_datetime(load_default=None)


class ChangesArgs(StrictSchema):
    cursor = Text(load_default=None, validate=validate.Regexp(r"^[0-9]{1,18}$", error="Not valid."))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class ChangeSchema(StrictSchema):
    seq = fields.Integer(required=True)
    stream = fields.String(required=True)
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    op = fields.String(required=True, validate=validate.OneOf(["upsert", "delete"]))
    data = fields.Dict(required=True, allow_none=True)


class ChangesPageSchema(StrictSchema):
    items = fields.List(fields.Nested(ChangeSchema), required=True)
    next_cursor = fields.String(required=True)
    has_more = fields.Boolean(required=True)


def _read_batch() -> list[Any]:
    """The batch envelope is checked here; each item is validated on its own so
    that one bad item does not reject its neighbours."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Unprocessable(
            "The body must be a JSON object with an `items` list.",
            errors={"json": {"_schema": ['Expected {"items": [...]}.']}},
        )
    unknown = set(body) - {"items"}
    if unknown:
        raise Unprocessable(
            "Unknown fields.", errors={"json": {k: ["Unknown field."] for k in sorted(unknown)}}
        )
    items = body.get("items")
    limit = settings().max_batch_items
    if not isinstance(items, list) or not items:
        raise Unprocessable(
            "`items` must be a non-empty list.", errors={"json": {"items": ["Must be a non-empty list."]}}
        )
    if len(items) > limit:
        raise Unprocessable(
            f"A batch holds at most {limit} items.", errors={"json": {"items": [f"At most {limit} items."]}}
        )
    return items


def register_stream(spec: StreamSpec, api_spec_register: list[Any]) -> None:
    title = spec.name.replace("-", " ")
    page_schema = type(
        f"{spec.out_schema.__name__.removesuffix('Schema')}PageSchema",
        (PageSchema,),
        {"items": fields.List(fields.Nested(spec.out_schema), required=True)},
    )
    item_ref = spec.item_schema.__name__.removesuffix("Schema")
    api_spec_register.append((item_ref, spec.item_schema))
    request_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["items"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 500,
                            "items": {"$ref": f"#/components/schemas/{item_ref}"},
                        }
                    },
                }
            }
        },
    }

    def get(self: MethodView, args: dict[str, Any], pid: str) -> dict[str, Any]:
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid)
        rows, next_key = streams.list_records(
            session,
            spec=spec,
            patient=patient,
            since=args["since"],
            until=args["until"],
            after=decode_cursor(args["cursor"], 2),
            limit=args["limit"],
        )
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action=f"{spec.name}.read",
            patient_id=patient.id,
            resource_type=spec.name,
            detail=f"{len(rows)} items",
        )
        session.commit()
        return {
            "items": [streams.to_output(spec, r) for r in rows],
            "next_cursor": encode_cursor(next_key) if next_key else None,
        }

    def post(self: MethodView, pid: str) -> Response:
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid, for_update=True)
        items = _read_batch()
        results = streams.ingest_batch(
            session,
            spec=spec,
            patient=patient,
            principal=principal,
            items=items,
            now=utcnow(),
            settings=settings(),
        )
        session.commit()
        # The results are built here in the documented shape; serialising them
        # directly skips a schema pass over up to 500 items (a tenth of a batch's time).
        return jsonify({"results": results})

    get.__doc__ = f"Read {title} in time order (paged; `since` inclusive, `until` exclusive)"
    post.__doc__ = f"Upload a batch of {title} (at most 500; idempotent by `client_id`)\n\n{spec.description}"
    collection = type(
        f"{spec.model.__name__}Collection",
        (MethodView,),
        {
            "get": blp.arguments(WindowArgs, location="query")(
                blp.response(200, page_schema)(
                    blp.alt_response(404, description="No such patient, or not yours")(get)
                )
            ),
            "post": blp.doc(requestBody=request_body)(
                blp.response(200, BatchAnswerSchema)(
                    blp.alt_response(404, description="No such patient, or not yours")(
                        blp.alt_response(413, description="Body too large")(
                            blp.alt_response(422, description="Not a valid batch envelope")(post)
                        )
                    )
                )
            ),
        },
    )
    blp.route(f"/patients/<pid>/{spec.name}")(collection)

    def get_one(self: MethodView, pid: str, record_id: str) -> dict[str, Any]:
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid)
        row = session.get(spec.model, record_id)
        if row is None or row.patient_id != patient.id or row.deleted_at is not None:
            from backend.errors import NotFound

            record_denied(
                session,
                principal,
                action=f"{spec.name}.access",
                resource_type=spec.name,
                resource_id=record_id,
            )
            raise NotFound("No such record.")
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action=f"{spec.name}.read",
            patient_id=patient.id,
            resource_type=spec.name,
            resource_id=row.id,
        )
        session.commit()
        return streams.to_output(spec, row)

    def delete(self: MethodView, pid: str, record_id: str) -> None:
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid, for_update=True)
        streams.tombstone(
            session,
            spec=spec,
            patient=patient,
            principal=principal,
            record_id=record_id,
            now=utcnow(),
            settings=settings(),
        )
        session.commit()

    get_one.__doc__ = f"Read one of {title}"
    delete.__doc__ = f"Delete one of {title} (kept as a tombstone for sync; replays do not revive it)"
    item = type(
        f"{spec.model.__name__}Item",
        (MethodView,),
        {
            "get": blp.response(200, spec.out_schema)(
                blp.alt_response(404, description="No such record, or not yours")(get_one)
            ),
            "delete": blp.response(204)(
                blp.alt_response(404, description="No such record, or not yours")(delete)
            ),
        },
    )
    blp.route(f"/patients/<pid>/{spec.name}/<record_id>")(item)


def register_changes(specs: list[StreamSpec]) -> None:
    @blp.route("/patients/<pid>/changes")
    class Changes(MethodView):
        @blp.arguments(ChangesArgs, location="query")
        @blp.response(200, ChangesPageSchema)
        @blp.alt_response(404, description="No such patient, or not yours")
        def get(self, args: dict[str, Any], pid: str) -> dict[str, Any]:
            """Everything that changed in the patient's data after `cursor` (sync feed)

            Start without a cursor; keep the `next_cursor` of each answer and ask
            again with it. Deleted items appear with `op: delete`."""
            principal = current_principal()
            session = db()
            patient = load_patient_for(session, principal, pid)
            raw = args["cursor"]
            if raw is not None and not raw.isdigit():
                raise Unprocessable("The cursor is not valid.", errors={"cursor": ["Not valid."]})
            after = int(raw) if raw else 0
            items, last = streams.changes_since(
                session, specs=specs, patient=patient, after_seq=after, limit=args["limit"]
            )
            record_audit(
                session,
                actor_id=principal.user_id,
                actor_role=principal.role,
                action="changes.read",
                patient_id=patient.id,
                resource_type="changes",
                detail=f"{len(items)} items",
            )
            session.commit()
            return {"items": items, "next_cursor": str(last), "has_more": last < patient.change_seq}


def _register_all() -> list[tuple[str, type[Schema]]]:
    from backend.streams.registry import STREAMS

    item_schemas: list[tuple[str, type[Schema]]] = []
    for spec in STREAMS:
        register_stream(spec, item_schemas)
    register_changes(STREAMS)
    return item_schemas


# Routes are attached once, when the module is imported; every app reuses them.
ITEM_SCHEMAS = _register_all()
