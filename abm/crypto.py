"""Connector secrets at rest: Fernet tokens under rotatable keys, and their masked form.

The keys are ``ENCRYPTION_KEYS`` (``ABM_ENCRYPTION_KEYS``: comma-separated Fernet keys,
newest first). cryptography's :class:`~cryptography.fernet.MultiFernet` encrypts with
the first key and decrypts with any of them, so rotating is:

1. put a new key in front: ``ABM_ENCRYPTION_KEYS=NEW,OLD`` and restart;
2. ``abm connectors rotate-keys`` re-encrypts every stored secret under NEW;
3. drop OLD from the variable.

Nothing here logs, and no error message carries a secret or a key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import select

from abm.db import db
from abm.models import ConnectorConfig

#: What a secret looks like in every answer, page and log line.
MASK = "\u2022" * 8
#: Secrets at least this long show their last four characters after the mask.
SHOW_TAIL_FROM = 16


class SecretsError(Exception):
    """Stored secrets cannot be read with the configured keys (never carries a secret)."""


def _keys(keys: Sequence[str] | None) -> list[str]:
    if keys is None:
        keys = current_app.config.get("ENCRYPTION_KEYS") or []
    keys = [k for k in keys if k]
    if not keys:
        raise SecretsError("no encryption key is configured: set ABM_ENCRYPTION_KEYS "
                           "(comma-separated Fernet keys, newest first)")
    return keys


def fernet(keys: Sequence[str] | None = None) -> MultiFernet:
    """A MultiFernet over ``keys`` (default: the app's ``ENCRYPTION_KEYS``)."""
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in _keys(keys)])
    except ValueError:
        raise SecretsError("ABM_ENCRYPTION_KEYS holds a key that is not a Fernet key") from None


def encrypt(value: str, keys: Sequence[str] | None = None) -> str:
    return fernet(keys).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(token: str, keys: Sequence[str] | None = None) -> str:
    try:
        return fernet(keys).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise SecretsError("the stored secrets cannot be decrypted with any key of ABM_ENCRYPTION_KEYS; "
                           "put the key they were written with back in the list (after the newest), "
                           "or enter the secrets again") from None


def encrypt_json(values: dict, keys: Sequence[str] | None = None) -> str | None:
    """A Fernet token of ``values`` as JSON; None for an empty mapping."""
    if not values:
        return None
    return encrypt(json.dumps(values, sort_keys=True, separators=(",", ":")), keys)


def decrypt_json(token: str | None, keys: Sequence[str] | None = None) -> dict:
    if not token:
        return {}
    value = json.loads(decrypt(token, keys))
    return value if isinstance(value, dict) else {}


def rotate_token(token: str, keys: Sequence[str] | None = None) -> str:
    """``token`` re-encrypted under the newest key (raises SecretsError when no key reads it)."""
    try:
        return fernet(keys).rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretsError("a stored secret cannot be decrypted with any key of ABM_ENCRYPTION_KEYS") from None


def rotate(keys: Sequence[str] | None = None) -> int:
    """Re-encrypt every connector's stored secrets under the newest key; return how many.

    All or nothing: when one connector's secrets cannot be read, nothing is changed and
    :class:`SecretsError` names the connectors concerned.
    """

    rows = db.session.execute(
        select(ConnectorConfig).where(ConnectorConfig.secrets.is_not(None)).order_by(ConnectorConfig.name)
    ).scalars().all()
    rotated, unreadable = {}, []
    for row in rows:
        try:
            rotated[row.id] = rotate_token(row.secrets, keys)
        except SecretsError:
            unreadable.append(row.name)
    if unreadable:
        db.session.rollback()
        raise SecretsError(f"the secrets of {', '.join(unreadable)} cannot be decrypted with any key of "
                           "ABM_ENCRYPTION_KEYS; nothing was re-encrypted. Put the old key back in the "
                           "list (after the newest) and run rotate-keys again")
    for row in rows:
        row.secrets = rotated[row.id]
    db.session.commit()
    return len(rows)


def mask(value: object) -> str:
    """The masked form of a secret: ``••••••••`` and, for long secrets, their last 4 characters.

    Short secrets show nothing of themselves: four characters of an eight-character
    password are half of it.
    """
    text = "" if value is None else str(value)
    if len(text) >= SHOW_TAIL_FROM:
        return MASK + text[-4:]
    return MASK


def is_masked(value: object) -> bool:
    """True for a value that is (or starts like) a mask: posted back, it means "unchanged"."""
    return isinstance(value, str) and value.startswith(MASK)
