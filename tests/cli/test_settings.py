"""Settings that follow from others."""

from __future__ import annotations

import pytest

from backend.config import Settings


def test_links_default_to_the_address_actually_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLIC_BASE_URL", raising=False)
    monkeypatch.delenv("LAMTRACK_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("PORT", "9123")
    assert Settings.from_env().public_base_url == "http://127.0.0.1:9123"


def test_a_configured_public_address_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://lam.example.org")
    assert Settings.from_env().public_base_url == "https://lam.example.org"
