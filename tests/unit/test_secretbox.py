"""Encryption at rest of subscription secrets (Fernet, WEBHOOKS_ENCRYPTION_KEY)."""
from __future__ import annotations

from typing import Iterator

import fakeredis
import pytest

from webhooks import audit, secretbox, signing, subscriptions
from webhooks.errors import ConfigurationError, EncryptionError
from webhooks.keys import K
from webhooks.settings import reload_settings

URL = "https://127.0.0.1:8443/hook"




def _use_key(monkeypatch: pytest.MonkeyPatch, r: fakeredis.FakeRedis, key: str | None) -> None:
    """Run this process with ``key`` (None: unset); reload_settings drops the client, so put the fake back."""
    from webhooks import connection

    if key is None:
        monkeypatch.delenv("WEBHOOKS_ENCRYPTION_KEY", raising=False)
    else:
        monkeypatch.setenv("WEBHOOKS_ENCRYPTION_KEY", key)
    reload_settings()
    monkeypatch.setattr(connection, "_client", r)


def test_seal_then_unseal_with_the_same_key_gives_the_secret_back() -> None:
    key, secret = secretbox.new_key(), signing.generate_secret()
    sealed = secretbox.seal(secret, key)
    assert secretbox.is_sealed(sealed) and sealed.startswith("enc:v1:")
    assert secret not in sealed and secret[len("whsec_"):] not in sealed
    assert secretbox.unseal(sealed, key) == secret
    # Fernet tokens carry a random IV: the same secret seals differently each time
    assert secretbox.seal(secret, key) != sealed


def test_without_a_key_secrets_are_stored_as_they_are() -> None:
    secret = signing.generate_secret()
    assert secretbox.seal(secret, None) == secret
    assert secretbox.unseal(secret, None) == secret
    assert secretbox.unseal(secret, secretbox.new_key()) == secret  # a key added later still reads old rows


def test_unsealing_with_a_wrong_key_is_an_encryption_error_that_says_so() -> None:
    secret = signing.generate_secret()
    sealed = secretbox.seal(secret, secretbox.new_key())
    with pytest.raises(EncryptionError, match="WEBHOOKS_ENCRYPTION_KEY is not the key it was encrypted with") as info:
        secretbox.unseal(sealed, secretbox.new_key())
    assert secret not in str(info.value) and sealed not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unsealing_with_no_key_is_an_encryption_error_that_says_so() -> None:
    sealed = secretbox.seal(signing.generate_secret(), secretbox.new_key())
    with pytest.raises(EncryptionError, match="encrypted but WEBHOOKS_ENCRYPTION_KEY is not set"):
        secretbox.unseal(sealed, None)


@pytest.mark.parametrize("bad_key", ["not-a-key", "x" * 44, "c2hvcnQ="])
def test_a_malformed_key_is_a_configuration_error_naming_the_fix(bad_key: str) -> None:
    with pytest.raises(ConfigurationError, match="webhooks keygen") as info:
        secretbox.seal(signing.generate_secret(), bad_key)
    assert bad_key not in str(info.value)


def test_a_tampered_token_is_refused() -> None:
    key = secretbox.new_key()
    sealed = secretbox.seal(signing.generate_secret(), key)
    flipped = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    with pytest.raises(EncryptionError):
        secretbox.unseal(flipped, key)


def test_with_a_key_set_no_stored_secret_is_plaintext(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an encryption key
    _use_key(monkeypatch, r, secretbox.new_key())
    # When a subscription is created and rotated (so two secrets are stored)
    sub = subscriptions.create("acme", URL, ["*"])
    first = sub.signing_secrets()[0]
    rotated = subscriptions.rotate_secret("acme", sub.id, grace_s=600)
    second = rotated.signing_secrets()[0]
    # Then Redis holds neither in plain text, nor any whsec_ at all
    raw = b"".join(r.hvals(K.subs("acme"))) + b"".join(r.lrange(K.audit("acme"), 0, -1))
    for secret in (first, second):
        assert secret.encode() not in raw and secret[len("whsec_"):].encode() not in raw
    assert b"whsec_" not in raw and raw.count(b"enc:v1:") == 2
    # And the store still reads both back for signing
    assert subscriptions.get("acme", sub.id).signing_secrets() == [second, first]


def test_reading_encrypted_secrets_with_a_wrong_or_missing_key_fails_clearly(r: fakeredis.FakeRedis,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a subscription stored under key K1
    _use_key(monkeypatch, r, secretbox.new_key())
    sub = subscriptions.create("acme", URL, ["*"])
    # When the process runs with another key, Then signing secrets raise EncryptionError
    _use_key(monkeypatch, r, secretbox.new_key())
    stored = subscriptions.get("acme", sub.id)  # metadata still reads
    with pytest.raises(EncryptionError, match="not the key it was encrypted with"):
        stored.signing_secrets()
    with pytest.raises(EncryptionError):
        stored.public(reveal=True)
    # And listings (which hide secrets) still work
    assert stored.public()["secret"] == "whsec_••••••••"
    # When it runs with no key at all, Then EncryptionError says the key is not set
    _use_key(monkeypatch, r, None)
    with pytest.raises(EncryptionError, match="not set"):
        subscriptions.get("acme", sub.id).signing_secrets()


@pytest.mark.parametrize("grace_s", [0, 600])
def test_a_rotation_without_the_key_is_refused_before_anything_is_written(r: fakeredis.FakeRedis,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          grace_s: float) -> None:
    # Given a subscription whose secret is encrypted
    _use_key(monkeypatch, r, secretbox.new_key())
    sub = subscriptions.create("acme", URL, ["*"])
    before = r.hget(K.subs("acme"), sub.id)
    # When an operator rotates it from a shell where the key is missing
    _use_key(monkeypatch, r, None)
    # Then EncryptionError, and the stored subscription is unchanged: no plaintext secret was
    # stored next to the encrypted one, and no new secret exists that nobody was shown
    with pytest.raises(EncryptionError, match="not set"):
        subscriptions.rotate_secret("acme", sub.id, grace_s=grace_s)
    assert r.hget(K.subs("acme"), sub.id) == before
    assert [e["action"] for e in audit.entries("acme")] == ["create"]
