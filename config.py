"""Settings from ``ABM_*`` environment variables, one class per environment.

| variable | default |
|---|---|
| ABM_DATABASE_URL | sqlite:/// a file under instance/ |
| ABM_REDIS_URL | unset: an embedded Redis for one machine |
| ABM_SECRET_KEY | generated once into instance/ outside production |
| ABM_ENCRYPTION_KEYS | generated once into instance/ outside production (Fernet keys, newest first) |
| ABM_BASE_URL | http://127.0.0.1:5000 |
| ABM_ENV | development |
| ABM_DISPATCHERS | 2 (dispatcher chains at once on PostgreSQL) |
| ABM_TRUSTED_PROXIES | 0 (how many reverse proxies in front set X-Forwarded-For; the client address comes from them) |
| ABM_TOUCH_LEASE_SECONDS | 30 (a touch job's claim, renewed by its heartbeat; a dead worker's touches come back after it) |
| ABM_TOUCH_MAX_ATTEMPTS | 5 (claims of a touch before a retryable failure becomes final) |
| ABM_TOUCH_REQUEUE_SECONDS | 300 (an unclaimed queued touch is enqueued again after this, even behind a long queue) |
| ABM_LOG_FORMAT | text (``json``: one JSON object a line) |

Production refuses to start with a missing, placeholder or guessable secret (less than
128 bits by ``estimated_bits``).
"""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet

PLACEHOLDERS = {"", "change-me", "changeme", "secret", "dev", "development", "xxx", "todo"}
#: Estimated bits a production secret must have (see estimated_bits).
MIN_SECRET_BITS = 128
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says which variable and why."""


def _shannon(symbols) -> float:
    counts = Counter(symbols)
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


def estimated_bits(secret: str) -> float:
    """A pessimistic estimate of a secret's entropy: its length times the Shannon entropy
    per character of its characters, or of the steps between neighbours if that is less
    (``aaaa...`` has 0 bits, ``abcdef...`` almost none). A random ``token_urlsafe(48)``
    scores about 330; a readable phrase of 32 characters about 120."""
    steps = [ord(b) - ord(a) for a, b in zip(secret, secret[1:], strict=False)]
    return len(secret) * min(_shannon(secret), _shannon(steps) if steps else 0.0)


def instance_path() -> Path:
    return Path(os.environ.get("ABM_INSTANCE_PATH", Path.cwd() / "instance")).resolve()


def _generated_secret(name: str, make) -> str:
    """Read a development secret from instance/, generating it on first use."""
    folder = instance_path()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


class Config:
    ENV_NAME = "base"
    TESTING = False
    DEBUG = False

    def __init__(self) -> None:
        env = os.environ
        inst = instance_path()
        self.INSTANCE_PATH = str(inst)
        self.DATABASE_URL = env.get("ABM_DATABASE_URL") or f"sqlite:///{inst / 'abm.sqlite3'}"
        self.REDIS_URL = env.get("ABM_REDIS_URL") or None
        self.BASE_URL = (env.get("ABM_BASE_URL") or "http://127.0.0.1:5000").rstrip("/")
        self.SECRET_KEY = env.get("ABM_SECRET_KEY") or self.default_secret_key()
        keys = env.get("ABM_ENCRYPTION_KEYS") or self.default_encryption_keys()
        self.ENCRYPTION_KEYS = [k.strip() for k in keys.split(",") if k.strip()]
        self.OUTBOX_DIR = env.get("ABM_OUTBOX_DIR") or str(inst / "outbox")
        self.MAX_CONTENT_LENGTH = int(env.get("ABM_MAX_BODY_BYTES") or 50 * 1024 * 1024)
        self.ABM_DISPATCHERS = env.get("ABM_DISPATCHERS") or "2"
        self.TRUSTED_PROXIES = int(env.get("ABM_TRUSTED_PROXIES") or 0)
        for name, default in (("ABM_TOUCH_LEASE_SECONDS", "30"), ("ABM_TOUCH_MAX_ATTEMPTS", "5"),
                              ("ABM_TOUCH_REQUEUE_SECONDS", "300")):
            setattr(self, name, env.get(name) or default)
        self.ABM_LOG_FORMAT = (env.get("ABM_LOG_FORMAT") or "text").lower()
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        # Remember me: two weeks, not Flask-Login's year. Someone who works most days logs
        # in about twice a month; a copied cookie is useful for two weeks at most, and a
        # logout or a password change ends it at once (User.session_version).
        self.REMEMBER_COOKIE_DURATION = timedelta(days=14)
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.WTF_CSRF_TIME_LIMIT = None

    def default_secret_key(self) -> str | None:
        return _generated_secret("secret_key", lambda: secrets.token_urlsafe(48))

    def default_encryption_keys(self) -> str | None:
        return _generated_secret("encryption_keys", lambda: Fernet.generate_key().decode())

    def validate(self) -> None:
        """Raise ConfigError when the settings cannot be used."""
        if not (str(self.ABM_DISPATCHERS).isdigit() and 1 <= int(self.ABM_DISPATCHERS) <= 64):
            raise ConfigError(f"ABM_DISPATCHERS={self.ABM_DISPATCHERS!r} is not a whole number from 1 to 64")
        self.ABM_DISPATCHERS = int(self.ABM_DISPATCHERS)
        for name in ("ABM_TOUCH_LEASE_SECONDS", "ABM_TOUCH_MAX_ATTEMPTS", "ABM_TOUCH_REQUEUE_SECONDS"):
            value = str(getattr(self, name))
            if not (value.isdigit() and int(value) >= 1):
                raise ConfigError(f"{name}={value!r} is not a whole number of at least 1")
            setattr(self, name, int(value))
        if self.ABM_LOG_FORMAT not in ("text", "json"):
            raise ConfigError(f"ABM_LOG_FORMAT={self.ABM_LOG_FORMAT!r} is not text or json")
        for key in self.ENCRYPTION_KEYS:
            try:
                Fernet(key.encode())
            except ValueError as exc:
                raise ConfigError("ABM_ENCRYPTION_KEYS holds a key that is not a Fernet key "
                                  "(32 url-safe base64 bytes; make one with "
                                  "`python -c 'from cryptography.fernet import Fernet; "
                                  "print(Fernet.generate_key().decode())'`)") from exc

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in dir(self) if k.isupper()}


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    DEBUG = False


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        self.WTF_CSRF_ENABLED = True


class ProductionConfig(Config):
    ENV_NAME = "production"

    def __init__(self) -> None:
        super().__init__()
        # Production is served over HTTPS (ABM_BASE_URL https://...): cookies never travel in clear.
        self.SESSION_COOKIE_SECURE = True
        self.REMEMBER_COOKIE_SECURE = True

    def default_secret_key(self) -> str | None:
        return None

    def default_encryption_keys(self) -> str | None:
        return ""

    def validate(self) -> None:
        problems = []
        if not self.SECRET_KEY or self.SECRET_KEY.strip().lower() in PLACEHOLDERS or len(self.SECRET_KEY) < 32:
            problems.append(f"ABM_SECRET_KEY is missing or a placeholder (make one with `{MAKE_SECRET}`)")
        elif estimated_bits(self.SECRET_KEY) < MIN_SECRET_BITS:
            problems.append(f"ABM_SECRET_KEY is not random enough (about {estimated_bits(self.SECRET_KEY):.0f} bits, "
                            f"{MIN_SECRET_BITS} needed; make one with `{MAKE_SECRET}`)")
        if not self.ENCRYPTION_KEYS or any(k.lower() in PLACEHOLDERS for k in self.ENCRYPTION_KEYS):
            problems.append("ABM_ENCRYPTION_KEYS is missing or a placeholder (comma-separated Fernet keys)")
        elif any(estimated_bits(k) < MIN_SECRET_BITS for k in self.ENCRYPTION_KEYS):
            problems.append("ABM_ENCRYPTION_KEYS holds a key that is not random enough (make each with "
                            "`python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)")
        if not os.environ.get("ABM_DATABASE_URL"):
            problems.append("ABM_DATABASE_URL is not set (production wants PostgreSQL)")
        if not self.REDIS_URL:
            problems.append("ABM_REDIS_URL is not set (production does not run an embedded Redis)")
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))
        super().validate()


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load(env_name: str | None = None) -> Config:
    name = (env_name or os.environ.get("ABM_ENV") or "development").lower()
    if name not in CONFIGS:
        raise ConfigError(f"ABM_ENV={name!r} is not one of {', '.join(CONFIGS)}")
    return CONFIGS[name]()
