"""The care team's web pages: sign-in with a second factor, the alert page every
email links to, the triage list and the patient page."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import segno
from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from backend.alerts import services as alert_services
from backend.alerts.access import load_alert_for
from backend.alerts.emails import RULE_LABELS, URGENCY_LABELS
from backend.alerts.models import Alert, AlertEvent
from backend.audit import record_audit
from backend.auth import totp
from backend.auth.models import User
from backend.auth.permissions import clinician_team_ids
from backend.auth.principal import Principal
from backend.auth.services import check_credentials
from backend.db import utcnow
from backend.errors import APIError, Conflict, NotFound, Unprocessable
from backend.limits import limiter
from backend.patients.access import load_patient_for
from backend.patients.models import Patient
from backend.schemas import text_problem
from backend.triage.summaries import mark_reviewed, triage_summaries
from backend.web import db, settings
from backend.webui import charts, csrf, pages, present
from backend.webui.signin import clinician_page, pending_user, safe_next, signed_in, start

blp = Blueprint(
    "webui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

URGENCY_ORDER = ("urgent", "review", "digest")


@blp.before_request
def _check_form() -> None:
    if request.method == "POST":
        csrf.protect()


@blp.app_template_filter("when")
def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


@blp.app_template_filter("local")
def _local(value: Any, zone: ZoneInfo) -> str:
    """A moment in the patient's time zone: '4 Sep 2026, 19:00 BST'."""
    return present.local_time(value, zone)


@blp.app_context_processor
def _globals() -> dict[str, Any]:
    return {
        "rule_labels": RULE_LABELS,
        "urgency_labels": URGENCY_LABELS,
        "alert_subject": present.alert_subject,
    }


def page_not_found() -> tuple[str, int]:
    return render_template("not_found.html"), 404


@blp.errorhandler(NotFound)
def _not_found(_exc: NotFound) -> tuple[str, int]:
    return page_not_found()


@blp.errorhandler(CSRFError)
def _csrf(_exc: CSRFError) -> tuple[str, int]:
    return render_template(
        "message.html",
        title="Form expired",
        text=("This form was open too long or came from elsewhere. Go back, reload the page and try again."),
    ), 400


@blp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> tuple[str, int]:
    if exc.code == 404:
        return page_not_found()
    code = exc.code or 500
    text = "Too many attempts; wait a minute and try again." if code == 429 else (exc.description or "")
    return render_template("message.html", title=exc.name, text=text), code


def _audit(
    principal: Principal, action: str, *, patient_id: str, resource_type: str, resource_id: str
) -> None:
    record_audit(
        db(),
        actor_id=principal.user_id,
        actor_role=principal.role,
        action=action,
        patient_id=patient_id,
        resource_type=resource_type,
        resource_id=resource_id,
        detail="web",
    )


# ------------------------------------------------------------------ sign-in


def _form_account_key() -> str:
    email = request.form.get("email", "").strip().lower()[:320]
    return f"web-account:{email}" if email else (request.remote_addr or "")


def _second_factor_key() -> str:
    return f"web-2fa:{session.get('uid', request.remote_addr or '')}"


@blp.get("/")
def home() -> Response:
    return redirect(url_for("webui.patients") if signed_in() else url_for("webui.sign_in"))


@blp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(lambda: settings().login_rate_limit, methods=["POST"])
@limiter.limit(lambda: settings().login_rate_limit, key_func=_form_account_key, methods=["POST"])
def sign_in() -> Any:
    nxt = safe_next(request.values.get("next"))
    if request.method == "GET":
        if nxt:
            session["next"] = nxt
        if signed_in():
            return redirect(session.pop("next", None) or url_for("webui.patients"))
        return render_template("sign_in.html", error=None, email="")
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")[:1024]
    s = db()
    try:
        user = check_credentials(s, email=email, password=password, channel="web")
    except APIError:
        s.commit()
        return render_template(
            "sign_in.html", error="The email or password is not correct.", email=email
        ), 401
    if user.role != "clinician":
        s.commit()
        session.clear()
        return render_template("for_patients.html")
    start(user, "password")
    s.commit()
    if user.totp_enrolled_at is None:
        return redirect(url_for("webui.enrol"))
    return redirect(url_for("webui.second_factor"))


SECOND_FACTOR_ERRORS = {
    "reused": (
        "This code was already used; wait for the next one in your authenticator app "
        "(a new code every 30 seconds)."
    ),
    "recovery_code_used": "This recovery code was already used; each one works once.",
    "wrong": "That code is not right; check the phone's clock and try the current code.",
}


def _sign_in_again() -> Response:
    """A code form sent without a sign-in waiting for it: already signed in (a form
    sent twice), or the sign-in timed out or ended; never back to a blank page."""
    if signed_in():
        return redirect(session.pop("next", None) or url_for("webui.patients"))
    flash("The sign-in timed out or was interrupted; enter your email and password again.", "error")
    return redirect(url_for("webui.sign_in"))


@blp.route("/sign-in/code", methods=["GET", "POST"])
@limiter.limit(lambda: settings().login_rate_limit, key_func=_second_factor_key, methods=["POST"])
def second_factor() -> Any:
    user = pending_user()
    if user is None:
        return _sign_in_again() if request.method == "POST" else redirect(url_for("webui.sign_in"))
    if user.totp_enrolled_at is None:
        return redirect(url_for("webui.enrol"))
    if request.method == "GET":
        return render_template("second_factor.html", error=None)
    s = db()
    result = totp.verify_second_factor(s, user, code=request.form.get("code", "")[:64], now=utcnow())
    s.commit()
    if result != "ok":
        return render_template("second_factor.html", error=SECOND_FACTOR_ERRORS[result]), 401
    start(user, "full")
    return redirect(session.pop("next", None) or url_for("webui.patients"))


def _qr_svg(uri: str) -> Markup:
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#111", light="#fff", title="TOTP QR code")
    return Markup(svg)  # noqa: S704 (segno's own markup, made from the URI alone)


@blp.route("/sign-in/enrol", methods=["GET", "POST"])
@limiter.limit(lambda: settings().login_rate_limit, key_func=_second_factor_key, methods=["POST"])
def enrol() -> Any:
    user = pending_user()
    if user is None:
        return _sign_in_again() if request.method == "POST" else redirect(url_for("webui.sign_in"))
    if user.totp_enrolled_at is not None:
        return redirect(url_for("webui.second_factor"))
    s = db()
    if not user.totp_secret:
        user.totp_secret = totp.new_secret()  # kept while not confirmed; confirmed below
        s.commit()
    uri = totp.provisioning_uri(user.totp_secret or "", user.email)
    error = None
    if request.method == "POST":
        codes = totp.enrol(
            s, user, secret=user.totp_secret or "", code=request.form.get("code", "")[:64], now=utcnow()
        )
        s.commit()
        if codes is not None:
            start(user, "full")
            return render_template("recovery_codes.html", codes=codes, next=session.pop("next", None))
        error = "That code is not right; check the phone's clock and try the current code."
    return render_template("enrol.html", qr=_qr_svg(uri), secret=user.totp_secret, error=error), (
        401 if error else 200
    )


@blp.post("/sign-out")
def sign_out() -> Response:
    principal = signed_in()
    if principal is not None:
        record_audit(
            db(), actor_id=principal.user_id, actor_role=principal.role, action="auth.logout", detail="web"
        )
        db().commit()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("webui.sign_in"))


# ------------------------------------------------------------------ alerts


def _alert_for(principal: Principal, alert_id: str, *, for_update: bool = False) -> Alert:
    return load_alert_for(db(), principal, alert_id, for_update=for_update)


@blp.get("/alerts/<alert_id>")
@clinician_page
def alert_page(alert_id: str, *, principal: Principal) -> Any:
    alert = _alert_for(principal, alert_id)
    history = list(
        db().scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.at, AlertEvent.id)
        )
    )
    actors = pages.emails_of(db(), {e.actor_id for e in history if e.actor_id})
    patient = db().get(Patient, alert.patient_id)
    assert patient is not None  # an alert's patient is a foreign key
    _audit(principal, "alert.read", patient_id=alert.patient_id, resource_type="alert", resource_id=alert.id)
    db().commit()
    return render_template(
        "alert.html",
        alert=alert,
        patient=patient,
        history=history,
        actors=actors,
        numbers=present.alert_numbers(alert.numbers or {}, patient.timezone),
        zone=ZoneInfo(patient.timezone),
        actions=alert_services.allowed_actions(alert),
        action_labels=_ACTION_LABELS,
    )


_DONE = {"acknowledge": "Acknowledged.", "snooze": "Snoozed.", "resolve": "Resolved."}
_ACTION_LABELS = {"acknowledge": "Acknowledge", "snooze": "Snooze", "resolve": "Resolve"}
_ACTIONS = {
    "acknowledge": alert_services.acknowledge_alert,
    "snooze": alert_services.snooze_alert,
    "resolve": alert_services.resolve_alert,
}


@blp.post("/alerts/<alert_id>/<action>")
@clinician_page
def alert_action(alert_id: str, action: str, *, principal: Principal) -> Any:
    change = _ACTIONS.get(action)
    if change is None:
        abort(404)
    alert = _alert_for(principal, alert_id, for_update=True)
    if action not in alert_services.allowed_actions(alert):
        # a page left open while someone else acted, or a form sent twice
        db().rollback()
        flash(f"The alert is already {alert.status}; nothing was changed.", "error")
        return redirect(url_for("webui.alert_page", alert_id=alert_id))
    note = request.form.get("note", "").strip()[:2000] or None
    if note is not None and text_problem(note):
        flash("The note holds a character that cannot be stored (a NUL); nothing was changed.", "error")
        return redirect(url_for("webui.alert_page", alert_id=alert.id))
    options: dict[str, Any] = {"note": note}
    if action == "snooze":
        try:
            hours = float(request.form.get("hours", ""))
        except ValueError:
            hours = 0.0
        if not 0 < hours <= 24 * 14:
            flash("Snooze for between 1 hour and 14 days.", "error")
            return redirect(url_for("webui.alert_page", alert_id=alert.id))
        options.update(until=None, hours=hours)
    try:
        change(db(), alert=alert, actor_id=principal.user_id, now=utcnow(), **options)
    except (Conflict, Unprocessable) as exc:
        db().rollback()
        flash(exc.detail or exc.title, "error")
        return redirect(url_for("webui.alert_page", alert_id=alert_id))
    db().commit()
    flash(_DONE[action])
    return redirect(url_for("webui.alert_page", alert_id=alert_id))


# ------------------------------------------------------------------ patients


@blp.get("/patients")
@clinician_page
def patients(*, principal: Principal) -> Any:
    s = db()
    teams = clinician_team_ids(s, principal.user_id)
    rows = list(
        s.scalars(select(Patient).where(Patient.care_team_id.in_(teams)).order_by(Patient.created_at))
    )
    summaries = triage_summaries(s, [p.id for p in rows], now=utcnow())

    def rank(p: Patient) -> tuple[Any, ...]:
        counts = summaries[p.id]["open_alerts"]
        last = summaries[p.id]["last_session_at"]
        return (*(-counts[u] for u in URGENCY_ORDER), last.timestamp() if last else 0.0)

    rows.sort(key=rank)
    record_audit(
        s,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action="patient.list",
        resource_type="patient",
        detail=f"web: {len(rows)} patients",
    )
    s.commit()
    return render_template("patients.html", patients=rows, summaries=summaries)


@blp.get("/patients/<pid>")
@clinician_page
def patient_page(pid: str, *, principal: Principal) -> Any:
    s = db()
    patient = load_patient_for(s, principal, pid)
    view = pages.patient_view(s, patient, now=utcnow())
    _audit(principal, "patient.read", patient_id=patient.id, resource_type="patient", resource_id=patient.id)
    s.commit()
    return render_template(
        "patient.html",
        patient=patient,
        v=view,
        zone=ZoneInfo(patient.timezone),
        fev1_legend=charts.legend(charts.FEV1_LEGEND),
        trough_legend=charts.legend(charts.TROUGH_LEGEND),
    )


@blp.post("/patients/<pid>/reviewed")
@clinician_page
def patient_reviewed(pid: str, *, principal: Principal) -> Any:
    s = db()
    patient = load_patient_for(s, principal, pid)
    mark_reviewed(s, patient_id=patient.id, reviewer_id=principal.user_id, now=utcnow())
    _audit(
        principal, "patient.reviewed", patient_id=patient.id, resource_type="patient", resource_id=patient.id
    )
    s.commit()
    flash("Marked reviewed.")
    back = safe_next(request.form.get("next"))
    return redirect(back or url_for("webui.patient_page", pid=patient.id))


def user_email(user_id: str | None) -> str:
    user = db().get(User, user_id) if user_id else None
    return user.email if user else "system"
