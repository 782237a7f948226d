"""Access tokens verified once per process: an entry never outlives the token,
never serves another key set, issuer or audience, and never serves a token
that differs by one character."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from backend.auth import tokens
from backend.auth.tokens import ACCESS_TYP, REFRESH_TYP, decode_token, issue_token
from backend.config import Settings
from backend.errors import Unauthorized


def _settings(key: str = "a" * 48, **kw: str) -> Settings:
    return Settings(database_url="sqlite://", jwt_keys={"k1": key}, **kw)  # type: ignore[arg-type]


def _access(settings: Settings, lifetime: int = 600) -> str:
    token, _ = issue_token(
        settings,
        user_id="u-1",
        role="patient",
        typ=ACCESS_TYP,
        lifetime_seconds=lifetime,
        now=datetime.now(UTC),
    )
    return token


def test_second_decode_is_served_from_the_cache() -> None:
    settings = _settings()
    token = _access(settings)
    first = decode_token(settings, token, expected_typ=ACCESS_TYP)
    assert decode_token(settings, token, expected_typ=ACCESS_TYP) is first


def test_other_keys_issuer_or_audience_are_not_served_from_the_cache() -> None:
    settings = _settings()
    token = _access(settings)
    decode_token(settings, token, expected_typ=ACCESS_TYP)
    for other in (
        _settings(key="b" * 48),
        _settings(jwt_issuer="someone-else"),
        _settings(jwt_audience="another-api"),
    ):
        with pytest.raises(Unauthorized):
            decode_token(other, token, expected_typ=ACCESS_TYP)


def test_a_tampered_token_is_refused_after_the_original_was_cached() -> None:
    settings = _settings()
    token = _access(settings)
    decode_token(settings, token, expected_typ=ACCESS_TYP)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(Unauthorized):
        decode_token(settings, f"{head}.{payload}.{flipped}", expected_typ=ACCESS_TYP)
    with pytest.raises(Unauthorized):  # an access token is not a refresh token, cached or not
        decode_token(settings, token, expected_typ=REFRESH_TYP)


def test_a_cached_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "LEEWAY_SECONDS", 0)
    settings = _settings()
    token = _access(settings, lifetime=1)
    decode_token(settings, token, expected_typ=ACCESS_TYP)
    time.sleep(2.1)  # exp has whole seconds: at most 2 s after issue
    with pytest.raises(Unauthorized):
        decode_token(settings, token, expected_typ=ACCESS_TYP)
