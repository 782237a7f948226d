"""Tokens (RFC 8725), refresh rotation with reuse detection (RFC 9700), logout,
login and registration answers that do not enumerate accounts, login throttling.

Forged tokens are made with PyJWT directly from the test settings' key."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from backend import create_app
from backend.config import Settings

ME = "/api/v1/patients/me"
PROBLEM = "application/problem+json"
KID = "test-1"
KEY = "k" * 48

# A public key an attacker could know; used as an HMAC secret in the confusion attack.
RSA_PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo
4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u
+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh
kd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ
0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg
cKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc
mwIDAQAB
-----END PUBLIC KEY-----
"""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(settings: Settings, user_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": user_id,
        "role": "patient",
        "typ": "at+jwt",
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def make_token(payload: dict[str, Any], *, key: str = KEY, kid: str = KID, typ: str = "at+jwt") -> str:
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": kid, "typ": typ})


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT itself refuses a PEM key as an HMAC secret."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def subject(actor: Any) -> str:
    """The account id behind an actor, read from its real access token."""
    return str(jwt.decode(actor.token, options={"verify_signature": False})["sub"])


def assert_unauthorized(resp: Any) -> None:
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.mimetype == PROBLEM
    body = resp.get_json()
    assert body["status"] == 401 and body["title"]
    assert "traceback" not in resp.get_data(as_text=True).lower()


def get_me(client: FlaskClient, token: str) -> Any:
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


def test_self_made_valid_token_is_accepted(client: FlaskClient, patient: Any, settings: Settings) -> None:
    """The control for every forgery below: the same recipe, correctly signed, works."""
    resp = get_me(client, make_token(claims(settings, subject(patient))))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["id"] == patient.patient_id


def _forgeries(settings: Settings, user_id: str, refresh_token: str, access_token: str) -> dict[str, str]:
    good = claims(settings, user_id)
    past = int(time.time()) - 3600
    head, payload, sig = access_token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded["role"] = "clinician"
    tampered = f"{head}.{b64(json.dumps(decoded).encode())}.{sig}"
    decoded_sub = dict(decoded, role="patient", sub=str(uuid.uuid4()))
    tampered_sub = f"{head}.{b64(json.dumps(decoded_sub).encode())}.{sig}"
    none_header = b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": KID}).encode())
    none_token = f"{none_header}.{b64(json.dumps(good).encode())}."
    return {
        "alg none": none_token,
        "alg none via PyJWT": jwt.encode(good, None, algorithm="none", headers={"kid": KID, "typ": "at+jwt"}),
        "wrong key": make_token(good, key="x" * 48),
        "unknown kid": make_token(good, kid="test-2"),
        "no kid": jwt.encode(good, KEY, algorithm="HS256", headers={"typ": "at+jwt"}),
        "expired": make_token(claims(settings, user_id, iat=past - 600, exp=past)),
        "wrong audience": make_token(claims(settings, user_id, aud="someone-else")),
        "wrong issuer": make_token(claims(settings, user_id, iss="evil")),
        "no exp": make_token(claims(settings, user_id, exp=None)),
        "typ claim missing": make_token(claims(settings, user_id, typ=None)),
        "typ header wrong": make_token(good, typ="JWT"),
        "typ claim is refresh": make_token(claims(settings, user_id, typ="rt+jwt")),
        "unknown role": make_token(claims(settings, user_id, role="admin")),
        "role of someone else": make_token(claims(settings, user_id, role="clinician")),
        "tampered role": tampered,
        "tampered subject": tampered_sub,
        "stripped signature": f"{head}.{payload}.",
        "HS384": jwt.encode(good, KEY, algorithm="HS384", headers={"kid": KID, "typ": "at+jwt"}),
        "HS256 with RSA public key": hand_signed(
            {"alg": "HS256", "typ": "at+jwt", "kid": KID}, good, RSA_PUBLIC_PEM.encode()
        ),
        "RS256 header": hand_signed({"alg": "RS256", "typ": "at+jwt", "kid": KID}, good, KEY.encode()),
        "refresh token as access token": refresh_token,
        "garbage": "not-a-jwt",
    }


def test_forged_and_misused_tokens_are_refused(client: FlaskClient, patient: Any, settings: Settings) -> None:
    forged = _forgeries(settings, subject(patient), patient.refresh_token, patient.token)
    for name, token in forged.items():
        resp = get_me(client, token)
        assert resp.status_code == 401, (name, resp.status_code, resp.get_json())
        assert_unauthorized(resp)
    assert get_me(client, patient.token).status_code == 200


def test_missing_or_malformed_authorization_header(client: FlaskClient, patient: Any) -> None:
    for header in (
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Basic {patient.token}",
        patient.token,
        f"Token {patient.token}",
    ):
        headers = {} if header is None else {"Authorization": header}
        resp = client.get(ME, headers=headers)
        assert_unauthorized(resp)


def test_token_of_a_clinician_signed_by_us_but_for_a_patient_subject(
    client: FlaskClient, patient: Any, clinician: Any, settings: Settings
) -> None:
    """A token whose role claim disagrees with the account is refused."""
    token = make_token(claims(settings, subject(clinician), role="patient"))
    assert_unauthorized(get_me(client, token))


def test_access_token_is_not_a_refresh_token(client: FlaskClient, patient: Any) -> None:
    resp = client.post("/api/v1/auth/refresh", json={"refresh_token": patient.token})
    assert_unauthorized(resp)


def test_forged_refresh_tokens_are_refused(client: FlaskClient, patient: Any, settings: Settings) -> None:
    forged = make_token(claims(settings, subject(patient), typ="rt+jwt", fam="x" * 32), typ="rt+jwt")
    assert_unauthorized(client.post("/api/v1/auth/refresh", json={"refresh_token": forged}))
    wrong_key = make_token(claims(settings, subject(patient), typ="rt+jwt"), key="y" * 48, typ="rt+jwt")
    assert_unauthorized(client.post("/api/v1/auth/refresh", json={"refresh_token": wrong_key}))


def refresh(client: FlaskClient, token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_and_reuse_revokes_the_family(client: FlaskClient, patient: Any) -> None:
    first = patient.refresh_token
    resp = refresh(client, first)
    assert resp.status_code == 200, resp.get_json()
    second = resp.get_json()
    assert second["refresh_token"] != first
    assert get_me(client, second["access_token"]).status_code == 200
    resp = refresh(client, second["refresh_token"])
    assert resp.status_code == 200
    third = resp.get_json()["refresh_token"]

    # The first token comes back: someone holds a copy. Refused, and the family ends.
    assert_unauthorized(refresh(client, first))
    assert_unauthorized(refresh(client, third))
    assert_unauthorized(refresh(client, second["refresh_token"]))
    assert_unauthorized(get_me(client, second["access_token"]))

    # Another sign-in of the same account is another family and still works.
    login = client.post(
        "/api/v1/auth/login", json={"email": patient.email, "password": "correct horse battery staple"}
    )
    assert login.status_code == 200
    assert get_me(client, login.get_json()["access_token"]).status_code == 200
    assert refresh(client, login.get_json()["refresh_token"]).status_code == 200


def test_logout_revokes_the_refresh_token_and_its_successors(client: FlaskClient, patient: Any) -> None:
    rotated = refresh(client, patient.refresh_token).get_json()
    resp = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": rotated["refresh_token"]},
        headers={"Authorization": f"Bearer {rotated['access_token']}"},
    )
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert_unauthorized(refresh(client, rotated["refresh_token"]))
    assert_unauthorized(refresh(client, patient.refresh_token))
    # The access tokens of the ended login stop at once, not when they expire.
    assert_unauthorized(get_me(client, rotated["access_token"]))
    assert_unauthorized(get_me(client, patient.token))


def test_logout_needs_an_access_token_and_ones_own_refresh_token(
    client: FlaskClient, patient: Any, clinician: Any
) -> None:
    resp = client.post("/api/v1/auth/logout", json={"refresh_token": patient.refresh_token})
    assert_unauthorized(resp)
    # Someone else's refresh token cannot be used to end her sessions.
    resp = clinician.post("/api/v1/auth/logout", json={"refresh_token": patient.refresh_token})
    assert_unauthorized(resp)
    assert refresh(client, patient.refresh_token).status_code == 200


# ---------------------------------------------------------------- enumeration


def without_request_id(resp: Any) -> tuple[int, str, dict[str, Any]]:
    body = dict(resp.get_json())
    body.pop("request_id", None)
    return resp.status_code, resp.mimetype, body


def test_login_wrong_password_and_unknown_email_answer_the_same(client: FlaskClient, patient: Any) -> None:
    wrong_password = client.post("/api/v1/auth/login", json={"email": patient.email, "password": "x" * 20})
    unknown_email = client.post(
        "/api/v1/auth/login", json={"email": "nobody-" + patient.email, "password": "x" * 20}
    )
    assert_unauthorized(wrong_password)
    assert without_request_id(wrong_password) == without_request_id(unknown_email)
    assert "access_token" not in wrong_password.get_json()


def test_registration_failures_answer_the_same(
    client: FlaskClient, clinician: Any, patient: Any, db_sessionmaker: Any
) -> None:
    from sqlalchemy import update

    from backend.auth.models import InviteCode

    body = {
        "sex_at_birth": "female",
        "date_of_birth": "1980-01-01",
        "height_cm": 160,
        "lam_type": "sporadic",
        "timezone": "Europe/Berlin",
        "care_team_id": clinician.team_ids[0],
    }
    used = clinician.post("/api/v1/patients", json=body).get_json()
    ok = client.post(
        "/api/v1/auth/register",
        json={
            "invite_code": used["invite_code"],
            "email": f"u-{uuid.uuid4().hex[:6]}@example.org",
            "password": "a long enough password",
        },
    )
    assert ok.status_code == 201
    expired = clinician.post("/api/v1/patients", json=body).get_json()
    with db_sessionmaker() as session:
        session.execute(
            update(InviteCode)
            .where(InviteCode.patient_id == expired["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        session.commit()
    fresh = clinician.post("/api/v1/patients", json=body).get_json()

    def register(code: str, email: str | None = None) -> Any:
        return client.post(
            "/api/v1/auth/register",
            json={
                "invite_code": code,
                "email": email or f"n-{uuid.uuid4().hex[:6]}@example.org",
                "password": "a long enough password",
            },
        )

    answers = {
        "used": register(used["invite_code"]),
        "expired": register(expired["invite_code"]),
        "unknown": register("ABCD-EFGH-JKLM"),
        "email taken": register(fresh["invite_code"], email=patient.email),
    }
    shapes = {name: without_request_id(resp) for name, resp in answers.items()}
    first = shapes["used"]
    assert first[0] == 422 and first[1] == PROBLEM, first
    for name, shape in shapes.items():
        assert shape == first, (name, shape, first)
    # The fresh code was not consumed by the refused attempt.
    assert register(fresh["invite_code"]).status_code == 201


# ---------------------------------------------------------------- throttling


@pytest.fixture
def throttled_client(settings: Settings, db_sessionmaker: Any) -> Any:
    app = create_app(dataclasses.replace(settings, login_rate_limit="3 per minute"))
    app.config["TESTING"] = True
    yield app.test_client()
    app.extensions["lamtrack.engine"].dispose()


def test_login_is_throttled_with_retry_after(throttled_client: FlaskClient) -> None:
    body = {"email": "someone@example.org", "password": "wrong password here"}
    for _ in range(3):
        assert throttled_client.post("/api/v1/auth/login", json=body).status_code == 401
    resp = throttled_client.post("/api/v1/auth/login", json=body)
    assert resp.status_code == 429, resp.get_data(as_text=True)
    assert resp.mimetype == PROBLEM
    problem = resp.get_json()
    assert problem["status"] == 429 and problem["title"]
    assert int(resp.headers["Retry-After"]) > 0


def test_login_throttle_is_per_account_across_addresses(throttled_client: FlaskClient) -> None:
    body = {"email": "target@example.org", "password": "wrong password here"}
    for n in range(3):
        resp = throttled_client.post(
            "/api/v1/auth/login", json=body, environ_base={"REMOTE_ADDR": f"10.0.0.{n + 1}"}
        )
        assert resp.status_code == 401
    resp = throttled_client.post("/api/v1/auth/login", json=body, environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert resp.status_code == 429
    assert resp.mimetype == PROBLEM and int(resp.headers["Retry-After"]) > 0


def test_a_password_with_a_nul_is_a_wrong_password_not_a_malformed_request(
    client: Any, clinician: Any
) -> None:
    resp = client.post("/api/v1/auth/login", json={"email": clinician.email, "password": "a\x00b"})
    assert resp.status_code == 401, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    resp = client.post("/api/v1/auth/login", json={"email": clinician.email, "password": "a\ud800"})
    assert resp.status_code == 422
