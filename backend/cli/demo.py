"""`lamtrack demo`: a synthetic cohort in the embedded database, a few months of
weekly evaluations replayed, alerts in the API and alert emails as .eml files.

Everything is stored through the services the API uses: the team and the
clinician, each patient created with an invite and registered with it, her data
through the real ingest path.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.auth import totp
from backend.auth.models import User
from backend.auth.passwords import hash_password
from backend.auth.principal import Principal
from backend.config import Settings
from backend.db import make_engine, make_sessionmaker, utcnow
from backend.patients.accounts import create_clinician, create_team, register_patient
from backend.patients.models import CareTeam, Patient
from backend.patients.services import create_patient, update_patient
from backend.streams.ingest import ingest_batch
from backend.streams.registry import STREAMS

DEMO_TEAM = "LAM demo clinic"
DEMO_CLINICIAN = "demo@lamtrack.invalid"
DEMO_NAMESPACE = uuid.UUID("5b0c7f0e-3d0a-4c55-9d8e-6d656d6f0001")


# ------------------------------------------------------------------ seeding


def _demo_team(session: Session) -> CareTeam:
    team = session.scalars(select(CareTeam).where(CareTeam.name == DEMO_TEAM)).first()
    return team if team is not None else create_team(session, name=DEMO_TEAM)


def _demo_clinician(session: Session, *, team_id: str, password: str) -> User:
    """The demo clinician with a fresh password (printed by the demo)."""
    user = create_clinician(session, team_id=team_id, email=DEMO_CLINICIAN, password=password)
    user.password_hash = hash_password(password)
    return user


# ------------------------------------------------------------------ the synthetic cohort


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _demo_cohort(n: int, start: datetime, days: int, seed: int) -> list[dict[str, Any]]:
    """Patients from the clinical cohort simulator (backend.clinical.simulation:
    published FEV1 slopes, autocorrelated noise, outliers, adherence gaps,
    treatment starts, dose changes with troughs, side effects), as API items.

    One patient in seven also gets a 15 % acute drop, so the demo shows every
    kind of alert. Readings are sent without blows (as most home devices do).
    """
    from backend.clinical.simulation import simulate_cohort

    # A year of history before the replayed weeks, so that treatment starts have
    # readings before and after them (the cohort report's slopes).
    history_start = start - timedelta(days=REPORT_HISTORY_DAYS)
    simulated = simulate_cohort(
        n_patients=n,
        days=days + REPORT_HISTORY_DAYS,
        start=history_start.date(),
        seed=seed,
        acute_drop_p=1 / 7,
        treatment_start_p=TREATED_FRACTION,
    )
    cohort: list[dict[str, Any]] = []
    treated_index = 0
    for i, sim in enumerate(simulated):
        h, facts = sim.history, sim.history.facts
        k: int | None = None
        if h.regimens:
            h = _spread_for_report(h, treated_index)
            k = treated_index
            treated_index += 1
        items: dict[str, list[dict[str, Any]]] = {
            "spirometry": [
                {
                    "measured_at": _iso(r.measured_at),
                    "setting": r.setting,
                    "fev1_l": round(r.fev1_l, 3),
                    "fvc_l": round(r.fvc_l, 3) if r.fvc_l else None,
                    "pef_l_s": round(r.pef_l_s, 2) if r.pef_l_s else None,
                    "device": {"serial": r.device_id} if r.device_id else None,
                }
                for r in h.readings
            ],
            "doses": [
                {"taken_at": _iso(d.taken_at), "status": d.status, "dose_mg": d.dose_mg} for d in h.doses
            ],
            "regimens": [
                {
                    "effective_at": _iso(g.effective_at),
                    "kind": g.kind,
                    "daily_dose_mg": g.daily_dose_mg,
                    "drug_name": g.drug_name,
                }
                for g in h.regimens
            ],
            "troughs": [
                {
                    "drawn_at": _iso(t.drawn_at),
                    "value_ng_ml": round(t.value_ng_ml, 2),
                    "last_dose_at": _iso(t.last_dose_at) if t.last_dose_at else None,
                    "assay_method": "lc_ms_ms",
                }
                for t in h.troughs
            ],
            "side-effects": [
                {
                    "onset_at": _iso(e.onset_at),
                    "term": e.term,
                    "severity": e.severity,
                    "ctcae_grade": e.ctcae_grade,
                    "temperature_c": e.temperature_c,
                    "antibiotics_started": e.antibiotics_started,
                }
                for e in h.side_effects
            ],
            "events": [{"occurred_at": _iso(e.occurred_at), "kind": e.kind} for e in h.events],
        }
        cohort.append(
            {
                "id": str(uuid.uuid5(DEMO_NAMESPACE, f"patient-{i}")),
                "ref": f"DEMO-{i + 1:03d}",
                "timezone": facts.timezone,
                "treated": bool(h.regimens),
                "height_cm": facts.height_cm,
                "date_of_birth": facts.date_of_birth,
                "lam_type": facts.lam_type,
                "expected_sessions_per_week": facts.expected_sessions_per_week,
                "items": items,
                "profile": _report_profile(facts.date_of_birth, h, i, k),
            }
        )
    return cohort


# The demo's cohort report shows every group: most patients start sirolimus
# during the simulated year, treated patients cycle through the four trough bands
# (dose and level scaled together, as the level follows the dose) and
# alternately start below and above 70 % predicted FEV1. Simulated data only.
REPORT_HISTORY_DAYS = 365
TREATED_FRACTION = 0.85
BAND_SCALES = (0.3, 1.0, 1.4, 2.0)  # ~ < 5, 5-10, 10-15, > 15 ng/mL from ~9 ng/mL
START_PCT_TARGETS = (58.0, 85.0)


def _spread_for_report(h: Any, k: int) -> Any:
    """Her simulated course with dose and levels scaled into band k % 4 and
    FEV1 scaled so that she starts at about 58 or 85 % predicted."""
    from dataclasses import replace

    from backend.clinical.gli import age_on, fev1_reference

    scale = BAND_SCALES[k % len(BAND_SCALES)]

    def dose(mg: float | None) -> float | None:
        return None if mg is None else max(0.5, round(mg * scale * 2) / 2)

    regimens = tuple(replace(g, daily_dose_mg=dose(g.daily_dose_mg)) for g in h.regimens)
    doses = tuple(replace(d, dose_mg=dose(d.dose_mg)) for d in h.doses)
    troughs = tuple(replace(t, value_ng_ml=t.value_ng_ml * scale) for t in h.troughs)
    start = h.regimens[0].effective_at
    before = [r for r in h.readings if r.measured_at <= start] or list(h.readings)
    fev1 = sum(r.fev1_l for r in before[-10:]) / len(before[-10:])
    facts = h.facts
    ref = fev1_reference(
        sex_at_birth=facts.sex_at_birth,
        age_years=age_on(facts.date_of_birth, start.date()),
        height_cm=facts.height_cm,
        fev1_l=fev1,
    )
    factor = 1.0
    if ref is not None and ref.percent_predicted:
        factor = START_PCT_TARGETS[(k // len(BAND_SCALES)) % 2 ^ k % 2] / ref.percent_predicted
    readings = tuple(
        replace(
            r,
            fev1_l=r.fev1_l * factor,
            fvc_l=r.fvc_l * factor if r.fvc_l else r.fvc_l,
            pef_l_s=r.pef_l_s * factor if r.pef_l_s else r.pef_l_s,
        )
        for r in h.readings
    )
    return replace(h, regimens=regimens, doses=doses, troughs=troughs, readings=readings)


# Years from diagnosis to the start of sirolimus, one value per cohort-report band
# (< 2, 2-5, >= 5 years), spread within the band.
DIAGNOSIS_YEARS = ((0.5, 1.4), (2.2, 2.6), (5.5, 3.0))


def _report_profile(date_of_birth: Any, h: Any, i: int, k: int | None) -> dict[str, Any]:
    """Her clinical profile. Treated patients (k-th of them) cycle through the
    cohort report's diagnosis-to-start bands and menopausal statuses (one in three
    not recorded) so that every group has enough patients to be shown; DLCO,
    angiomyolipoma and chylous effusion vary so the start criteria have cases."""
    last = h.readings[-1].measured_at.date() if h.readings else date_of_birth
    anchor = h.regimens[0].effective_at.date() if h.regimens else last
    age = (anchor - date_of_birth).days / 365.25
    by_age = "postmenopausal" if age >= 50 else "premenopausal"
    if k is None:
        status, years = by_age, 0.5 + (i * 37 % 80) / 10
    else:
        status = "unknown" if k % 3 == 2 else ("postmenopausal" if k % 3 == 1 else "premenopausal")
        low, spread = DIAGNOSIS_YEARS[(k // 2) % 3]
        years = low + (i * 37 % 10) / 10 * spread
    pct = 45.0 + (i * 13 % 50)
    profile: dict[str, Any] = {
        "menopausal_status": status,
        "diagnosis_date": anchor - timedelta(days=int(365.25 * years)),
        "dlco_percent_predicted": pct,
        "dlco_ml_min_mmhg": round(pct / 100 * 24.0, 1),
        "dlco_measured_on": last - timedelta(days=i * 11 % 90),
    }
    if i % 5 == 0:
        profile["aml_largest_cm"] = 1.0 + (i % 7) * 0.5
        profile["aml_imaging_date"] = last - timedelta(days=30 + i)
    if i % 11 == 3:
        profile["chylous_effusion"] = "pleural"
        profile["chylous_effusion_symptomatic"] = bool(i % 2)
        profile["chylous_effusion_date"] = last - timedelta(days=60)
    return profile


def _time_of(stream: str, item: dict[str, Any]) -> datetime:
    key = {
        "spirometry": "measured_at",
        "doses": "taken_at",
        "regimens": "effective_at",
        "troughs": "drawn_at",
        "side-effects": "onset_at",
        "events": "occurred_at",
    }[stream]
    return datetime.fromisoformat(item[key])


def run_demo(
    settings: Settings,
    *,
    n_patients: int = 32,
    weeks: int = 16,
    seed: int = 7,
    echo: Callable[[str], None] = print,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Seed, replay weekly evaluations, queue the digest and deliver emails."""
    from backend.alerts.digest import queue_weekly_digests
    from backend.db_admin import upgrade
    from backend.evaluation.runner import evaluate_patients
    from backend.notify.outbox import deliver_outbox

    upgrade(settings.database_url)

    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    now = now or utcnow()
    days = weeks * 7
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    # A fresh password on every run (printed below), never a fixed one.
    password = "demo-" + secrets.token_urlsafe(12)
    try:
        with factory.begin() as session:
            team = _demo_team(session)
            clinician = _demo_clinician(session, team_id=team.id, password=password)
            # The second factor enrolled now, so the demo can be opened in a browser
            # at once (a real clinician enrols with the QR code at first sign-in).
            totp_secret, recovery_codes = totp.enrol_directly(session, clinician, now=now)
            team_id, clinician_id = team.id, clinician.id
        cohort = _demo_cohort(n_patients, start, days, seed)
        created = _seed(
            factory,
            cohort,
            team_id=team_id,
            clinician_id=clinician_id,
            start=start,
            days=days,
            settings=settings,
        )
        echo(f"patients: {len(cohort)} ({created} new)")
        weekly: list[dict[str, int]] = []
        if created:
            for week in range(1, weeks + 1):
                as_of = start + timedelta(days=7 * week)
                weekly.append(
                    evaluate_patients(
                        factory, settings=settings, as_of=min(as_of, now), full=True, replay=True
                    )
                )
            evaluate_patients(factory, settings=settings, as_of=now, full=True)
            queue_weekly_digests(factory, settings=settings, now=now)
        delivered = deliver_outbox(factory, settings=settings, now=lambda: now)
        with factory() as session:
            from backend.alerts.models import Alert

            by_status = dict(
                session.execute(
                    select(Alert.status, func.count(Alert.id))
                    .where(Alert.care_team_id == team_id)
                    .group_by(Alert.status)
                ).all()
            )
    finally:
        engine.dispose()
    opened = sum(w["opened"] for w in weekly)
    base = f"http://127.0.0.1:{settings.port}/api/v1"
    echo(f"replayed {len(weekly)} weekly evaluations: {opened} alerts opened; now by status: {by_status}")
    echo(
        f"emails: {delivered} (backend {settings.email_backend}"
        + (f", files in {settings.email_dir})" if settings.email_backend == "file" else ")")
    )
    echo("")
    site = base.removesuffix("/api/v1")
    echo(f"open {site}/ in a browser (./scripts/run serves it) and sign in:")
    echo(f"  email {DEMO_CLINICIAN}  password {password}")
    echo(f"  second factor: scan {totp.provisioning_uri(totp_secret, DEMO_CLINICIAN)}")
    echo("  in an authenticator app, or print the current code with")
    echo(f"    .venv/bin/python -c \"import pyotp; print(pyotp.TOTP('{totp_secret}').now())\"")
    echo("  recovery codes (one use each): " + " ".join(recovery_codes))
    echo(f"then: the triage list ({site}/patients), a patient's charts, an alert (the links in the")
    echo(f"emails above), the cohort report ({site}/cohort-report; the data are simulated).")
    echo("")
    echo("the same through the API:")
    echo(
        f"  TOKEN=$(curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' "
        f'-d \'{{"email": "{DEMO_CLINICIAN}", "password": "{password}"}}\' '
        "| python -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
    )
    echo(f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/alerts?status=open&limit=20'")
    echo(f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/alerts?severity=urgent'")
    echo(f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/patients'")
    echo(
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/teams/{team_id}/cohort-report'"
        "  # cohort report of simulated data"
    )
    echo(
        f'  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H \'Content-Type: '
        f'application/json\' -d \'{{"note": "called her"}}\' {base}/alerts/ALERT_ID/acknowledge'
    )
    return {
        "team_id": team_id,
        "patients": len(cohort),
        "created": created,
        "alerts": by_status,
        "emails": delivered,
        "password": password,
    }


def _seed(
    factory: sessionmaker[Session],
    cohort: list[dict[str, Any]],
    *,
    team_id: str,
    clinician_id: str,
    start: datetime,
    days: int,
    settings: Settings,
) -> int:
    """Store the cohort (skipping patients already there); one patient per
    transaction, items in time order as they would have arrived."""
    created = 0
    clinician = Principal(user_id=clinician_id, role="clinician")
    specs = {spec.name: spec for spec in STREAMS}
    for entry in cohort:
        with factory.begin() as session:
            if session.get(Patient, entry["id"]) is not None:
                continue
            profile = {
                "id": entry["id"],
                "care_team_id": team_id,
                "external_ref": entry["ref"],
                "sex_at_birth": "female",
                "timezone": entry["timezone"],
                "height_cm": entry["height_cm"],
                "date_of_birth": entry["date_of_birth"],
                "lam_type": entry["lam_type"],
                "treatment_status": "on_sirolimus" if entry["treated"] else "untreated",
                "expected_sessions_per_week": entry["expected_sessions_per_week"],
                "created_at": start,
            }
            patient, code = create_patient(
                session, principal=clinician, team_ids=[team_id], data=profile, settings=settings, now=start
            )
            # Her app's account, made with the invite as a patient would.
            register_patient(
                session,
                settings=settings,
                invite_code=code,
                email=f"patient-{entry['ref'].lower()}@lamtrack.invalid",
                password=secrets.token_urlsafe(16),
                now=start,
            )
            own = Principal(user_id=patient.user_id or "", role="patient")
            for stream, items in entry["items"].items():
                who = clinician if stream in ("regimens", "troughs") else own
                # a symptom report or an event arrives on its own, when it happened (so the
                # alert it raises is dated then); readings and doses in batches as a phone syncs
                size = 1 if stream in ("side-effects", "events") else 500
                for chunk_start in range(0, len(items), size):
                    chunk = [
                        {"client_id": str(uuid.uuid4()), **it}
                        for it in items[chunk_start : chunk_start + size]
                    ]
                    arrived = max(_time_of(stream, it) for it in chunk)
                    ingest_batch(
                        session,
                        spec=specs[stream],
                        patient=patient,
                        principal=who,
                        items=chunk,
                        now=arrived,
                        settings=settings,
                    )
            # The clinic records her clinical profile at the end of the history (its
            # dates, up to her last reading, are not in the future then).
            update_patient(
                session,
                principal=clinician,
                patient=patient,
                changes=entry.get("profile", {}),
                now=start + timedelta(days=days),
            )
            created += 1
    return created
