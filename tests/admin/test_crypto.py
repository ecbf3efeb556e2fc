"""Secrets at rest: Fernet under rotatable keys, masks, and ``abm connectors rotate-keys``."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text

from abm import crypto
from abm.db import db
from abm.services import connectors as service

SECRET = "rotate-me-0123456789-abcdefgh"


def test_mask_shows_the_tail_of_long_secrets_only():
    assert crypto.mask("a-long-secret-value-1234") == crypto.MASK + "1234"
    assert crypto.mask("short") == crypto.MASK
    assert crypto.mask(None) == crypto.MASK
    assert crypto.is_masked(crypto.mask("whatever")) and not crypto.is_masked("plain")


def test_encrypt_with_the_newest_decrypt_with_any():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = crypto.encrypt(SECRET, [old])
    assert crypto.decrypt(token, [new, old]) == SECRET
    assert Fernet(new.encode()).decrypt(crypto.encrypt(SECRET, [new, old]).encode()).decode() == SECRET
    with pytest.raises(crypto.SecretsError) as caught:
        crypto.decrypt(token, [new])
    assert SECRET not in str(caught.value) and new not in str(caught.value)
    with pytest.raises(crypto.SecretsError, match="not a Fernet key"):
        crypto.encrypt(SECRET, ["not-a-key"])


def _stored_token(name):
    return db.session.execute(text("SELECT secrets FROM connectors WHERE name = :n"), {"n": name}).scalar_one()


def test_rotation_re_encrypts_every_secret_under_the_newest_key(app, runner):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.config["ENCRYPTION_KEYS"] = [old]
    service.create({"type": "webhook", "name": "hook",
                    "settings": {"url": "https://hooks.example.com/in", "secret": SECRET}})
    service.create({"type": "log", "name": "plain", "settings": {}})  # no secrets: nothing to rotate

    app.config["ENCRYPTION_KEYS"] = [new, old]
    assert service.instantiate("hook").settings["secret"] == SECRET  # the old key still decrypts
    result = runner.invoke(args=["connectors", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 connector's secrets under the newest key" in result.output

    token = _stored_token("hook")
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(token.encode())
    app.config["ENCRYPTION_KEYS"] = [new]  # the old key is gone: the newest alone decrypts
    db.session.expire_all()
    assert service.instantiate("hook").settings["secret"] == SECRET


def test_rotation_changes_nothing_when_a_secret_is_unreadable(app, runner):
    lost, kept = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app.config["ENCRYPTION_KEYS"] = [lost]
    service.create({"type": "webhook", "name": "orphan",
                    "settings": {"url": "https://hooks.example.com/in", "secret": SECRET}})
    app.config["ENCRYPTION_KEYS"] = [kept]
    service.create({"type": "webhook", "name": "fine",
                    "settings": {"url": "https://hooks.example.com/in", "secret": SECRET}})
    before = _stored_token("fine")
    result = runner.invoke(args=["connectors", "rotate-keys"])
    assert result.exit_code == 1
    assert "the secrets of orphan cannot be decrypted" in result.output and "nothing was re-encrypted" in result.output
    assert _stored_token("fine") == before

    # The API still answers about it (masked), and says the secrets need entering again
    shown = service.serialize(service.get_config("orphan"))
    assert shown["secrets_readable"] is False and shown["settings"]["secret"] == crypto.MASK
    ok, message = service.test("orphan")
    assert not ok and "cannot be decrypted" in message
    service.update("orphan", {"settings": {"secret": "a-new-secret-entered-again"}})
    assert service.instantiate("orphan").settings["secret"] == "a-new-secret-entered-again"
