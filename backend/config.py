"""Settings: the only place that reads environment variables."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("LAMTRACK_INSTANCE_DIR", REPO_ROOT / "instance"))


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. `Settings.from_env()` is the production path;
    tests build one directly with the values they need."""

    database_url: str = f"sqlite:///{INSTANCE_DIR / 'lamtrack.sqlite3'}"
    port: int = 8000
    # Public base URL used in links inside emails (never patient details). Empty:
    # the address this machine serves, http://127.0.0.1:PORT.
    public_base_url: str = ""

    # --- the care team's web pages (backend/webui): the session cookie is Secure
    # when `auto` and the public base URL is https, or when `true`; a signed-in
    # page left alone this long signs out.
    web_cookie_secure: str = "auto"  # auto | true | false
    web_idle_minutes: int = 30

    # --- tokens (RFC 8725): HS256 keys by kid; the first kid signs, all verify.
    jwt_keys: dict[str, str] = field(default_factory=dict)
    jwt_issuer: str = "lamtrack"
    jwt_audience: str = "lamtrack-api"
    access_token_seconds: int = 300
    refresh_token_seconds: int = 30 * 24 * 3600
    invite_code_hours: int = 72

    # --- limits
    max_body_bytes: int = 2 * 1024 * 1024
    max_batch_items: int = 500
    login_rate_limit: str = "10 per minute"
    # "memory://" for one process; "redis://127.0.0.1:6379/0" shared by several workers
    # (`lamtrack serve` refuses more than one worker without a shared store: backend/serving.py).
    rate_limit_storage_url: str = "memory://"
    # Cohort reports: a group of fewer patients than this is shown without numbers.
    report_min_cell_size: int = 5

    # --- email
    email_backend: str = "file"  # file | smtp | console
    email_dir: str = str(INSTANCE_DIR / "outbox")
    email_from: str = "LAM care alerts <alerts@lamtrack.invalid>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: str = "none"  # none | starttls | tls
    smtp_timeout_seconds: float = 10.0

    # Outbox delivery: retries with exponential backoff and jitter; a claimed row
    # is leased so two deliverers never send it at the same time.
    outbox_batch_size: int = 50
    outbox_max_attempts: int = 10
    outbox_backoff_base_seconds: float = 30.0
    outbox_backoff_max_seconds: float = 3600.0
    outbox_claim_seconds: int = 120
    # Per care team and hour; urgent alert emails are never held back by the cap.
    email_team_hourly_cap: int = 30

    # --- ingest: a record dated more than this after the server's clock is refused
    # (a phone clock a few minutes fast is tolerated; a date in the future is an error)
    max_clock_skew_minutes: int = 5

    # --- alerts
    alert_renotify_hours: float = 4.0  # urgent alerts nobody acknowledged are emailed again
    alert_auto_resolve: bool = True  # resolve evaluation alerts once their condition clears
    # ... and has stayed clear this long: a condition that flickers (adherence,
    # readings near a threshold) keeps one alert instead of opening a new one each week.
    alert_auto_resolve_after_days: int = 7
    patient_reminder_emails: bool = True

    # --- scheduler
    scheduler_lease_seconds: int = 30
    scheduler_renew_seconds: int = 10
    heartbeat_stale_seconds: int = 120
    scheduler_evaluate_seconds: int = 60
    # Outbox delivery: an urgent alert email leaves within a few seconds of the report.
    scheduler_deliver_seconds: int = 2
    scheduler_maintenance_seconds: int = 300
    scheduler_reminder_seconds: int = 3600
    scheduler_nightly_hour_utc: int = 2
    scheduler_digest_weekday: int = 0  # Monday
    scheduler_digest_hour_utc: int = 7

    log_level: str = "INFO"

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        env = os.environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.name.upper()
            if f.name == "jwt_keys":
                continue
            raw = env.get(key) if key in env else env.get(f"LAMTRACK_{key}")
            if raw is None:
                continue
            if f.type in ("int",):
                values[f.name] = int(raw)
            elif f.type in ("float",):
                values[f.name] = float(raw)
            elif f.type in ("bool",):
                values[f.name] = _bool(raw)
            else:
                values[f.name] = raw
        values["jwt_keys"] = _jwt_keys_from_env(env)
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if not self.public_base_url:
            object.__setattr__(self, "public_base_url", f"http://127.0.0.1:{self.port}")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _jwt_keys_from_env(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """`LAMTRACK_JWT_KEYS="kid1:secret1,kid2:secret2"`; the first one signs.

    Without it, a key is generated once and kept in instance/ so that a local
    server keeps its sessions across restarts; production sets the variable.
    """
    raw = env.get("LAMTRACK_JWT_KEYS", "").strip()
    if raw:
        keys: dict[str, str] = {}
        for part in raw.split(","):
            kid, _, secret = part.strip().partition(":")
            if not kid or len(secret) < 32:
                raise ValueError("LAMTRACK_JWT_KEYS entries are kid:secret with secrets of 32+ chars")
            keys[kid] = secret
        return keys
    key_file = INSTANCE_DIR / "jwt.key"
    if not key_file.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return {"local-1": key_file.read_text().strip()}
