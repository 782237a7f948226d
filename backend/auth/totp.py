"""The second factor of the care team's web pages: TOTP (RFC 6238, pyotp) and
one-time recovery codes (only their hashes are stored)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Literal

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import RecoveryCode, User

ISSUER = "LAMtrack"
RECOVERY_CODE_COUNT = 10
STEP_SECONDS = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The `otpauth://` URI an authenticator app reads (from the QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def _step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step (this one or one either side, for clock drift) whose code is `code`."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    for offset in (0, -1, 1):
        step = _step(now) + offset
        if secrets.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _hash_code(code: str) -> str:
    return hashlib.sha256("".join(code.split()).replace("-", "").lower().encode()).hexdigest()


def new_recovery_codes(session: Session, user: User, now: datetime) -> list[str]:
    """Replace the user's recovery codes with fresh ones; returns them (shown once)."""
    session.query(RecoveryCode).filter(RecoveryCode.user_id == user.id).delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(code_hash=_hash_code(raw), user_id=user.id, created_at=now))
    return codes


def enrol(session: Session, user: User, *, secret: str, code: str, now: datetime) -> list[str] | None:
    """Confirm a new secret with a code from the app. Returns the recovery codes,
    or None when the code does not match (nothing changes)."""
    step = _matching_step(secret, code, now)
    if step is None:
        record_audit(
            session, actor_id=user.id, actor_role=user.role, action="auth.totp_enrol", outcome="denied"
        )
        return None
    user.totp_secret = secret
    user.totp_enrolled_at = now
    user.totp_last_step = step
    record_audit(session, actor_id=user.id, actor_role=user.role, action="auth.totp_enrol")
    return new_recovery_codes(session, user, now)


def enrol_directly(session: Session, user: User, *, now: datetime) -> tuple[str, list[str]]:
    """Enrol without a confirming code (an operator's scripted set-up): returns the
    secret and the recovery codes."""
    secret = new_secret()
    user.totp_secret = secret
    user.totp_enrolled_at = now
    user.totp_last_step = None
    record_audit(session, actor_id=None, actor_role="operator", action="auth.totp_enrol", resource_id=user.id)
    return secret, new_recovery_codes(session, user, now)


SecondFactorResult = Literal["ok", "reused", "recovery_code_used", "wrong"]


def verify_second_factor(session: Session, user: User, *, code: str, now: datetime) -> SecondFactorResult:
    """A current TOTP code not used before, or an unused recovery code (then spent).

    `ok`; `reused` for a current code already used (or older than the last one
    used: the next code in the app is the one to give); `recovery_code_used` for a
    recovery code spent before; `wrong` for anything else. Writes an audit row
    either way."""
    result: SecondFactorResult = "wrong"
    how = "totp"
    if user.totp_secret:
        step = _matching_step(user.totp_secret, code, now)
        if step is not None and (user.totp_last_step is None or step > user.totp_last_step):
            user.totp_last_step = step
            result = "ok"
        elif step is not None:
            result = "reused"
    if result == "wrong" and code.strip():
        code_hash = _hash_code(code)
        spent = session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
        )
        if spent.rowcount:  # type: ignore[attr-defined]
            result, how = "ok", "recovery_code"
        elif session.scalars(
            select(RecoveryCode.code_hash).where(
                RecoveryCode.user_id == user.id, RecoveryCode.code_hash == code_hash
            )
        ).first():
            result = "recovery_code_used"
    record_audit(
        session,
        actor_id=user.id,
        actor_role=user.role,
        action="auth.second_factor",
        outcome="success" if result == "ok" else "denied",
        detail=how if result == "ok" else (None if result == "wrong" else result),
    )
    return result


def unused_recovery_codes(session: Session, user_id: str) -> int:
    return len(
        session.scalars(
            select(RecoveryCode.code_hash).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        ).all()
    )
