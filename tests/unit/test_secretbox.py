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


def test_without_a_key_a_new_secret_is_refused_unless_the_development_flag_is_set() -> None:
    secret = signing.generate_secret()
    with pytest.raises(ConfigurationError) as info:
        secretbox.seal(secret, None)
    assert "WEBHOOKS_ENCRYPTION_KEY" in str(info.value) and "WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1" in str(info.value)
    assert "webhooks keygen" in str(info.value) and secret not in str(info.value)
    assert secretbox.seal(secret, None, allow_plaintext=True) == secret
    with pytest.raises(ConfigurationError):
        secretbox.seal(secret, " , ")  # no key in it at all


def test_plain_secrets_stored_earlier_stay_readable() -> None:
    secret = signing.generate_secret()
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


# --- encrypted by default: refusal, key rotation, encrypting what is stored ---------------------
def _use_flag(monkeypatch: pytest.MonkeyPatch, r: fakeredis.FakeRedis, on: bool) -> None:
    if on:
        monkeypatch.setenv("WEBHOOKS_ALLOW_PLAINTEXT_SECRETS", "1")
    else:
        monkeypatch.delenv("WEBHOOKS_ALLOW_PLAINTEXT_SECRETS", raising=False)
    _use_key(monkeypatch, r, None)


def test_creating_or_rotating_without_a_key_or_the_flag_is_refused_and_stores_nothing(
    r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a development subscription stored in plain text
    _use_flag(monkeypatch, r, True)
    sub = subscriptions.create("acme", URL, ["*"])
    before = r.hgetall(K.subs("acme"))
    # When the process runs like production without a key, and without the development flag
    _use_flag(monkeypatch, r, False)
    # Then creating a subscription and rotating a secret are both refused with the fix
    for call in (lambda: subscriptions.create("acme", URL, ["*"]), lambda: subscriptions.rotate_secret("acme", sub.id)):
        with pytest.raises(ConfigurationError, match="WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1"):
            call()
    # And nothing was written
    assert r.hgetall(K.subs("acme")) == before
    assert [e["action"] for e in audit.entries("acme")] == ["create"]


def test_a_key_list_encrypts_with_the_newest_and_decrypts_with_any() -> None:
    old, new = secretbox.new_key(), secretbox.new_key()
    secret = signing.generate_secret()
    under_old = secretbox.seal(secret, old)
    both = f"{new}, {old}"
    assert secretbox.unseal(under_old, both) == secret
    under_new = secretbox.seal(secret, both)
    assert secretbox.unseal(under_new, new) == secret
    with pytest.raises(EncryptionError):
        secretbox.unseal(under_new, old)


def test_reseal_moves_plain_and_old_key_secrets_to_the_newest_key_and_is_idempotent() -> None:
    old, new = secretbox.new_key(), secretbox.new_key()
    secret = signing.generate_secret()
    for stored in (secret, secretbox.seal(secret, old)):
        once = secretbox.reseal(stored, f"{new},{old}")
        assert secretbox.unseal(once, new) == secret
        assert secretbox.reseal(once, f"{new},{old}") == once
    with pytest.raises(EncryptionError, match="none of the WEBHOOKS_ENCRYPTION_KEY keys"):
        secretbox.reseal(secretbox.seal(secret, secretbox.new_key()), f"{new},{old}")


def test_encrypt_stored_encrypts_current_and_rotated_out_secrets_once(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    from webhooks.secretsweep import count_plaintext, encrypt_stored

    # Given plain secrets in two accounts, one of them rotated (its old secret still signs)
    _use_flag(monkeypatch, r, True)
    a = subscriptions.create("acme", URL, ["*"])
    a = subscriptions.rotate_secret("acme", a.id, grace_s=600)
    b = subscriptions.create("other", URL, ["*"])
    live = {a.id: a.signing_secrets(), b.id: b.signing_secrets()}
    assert count_plaintext() == 3 and count_plaintext("acme") == 2
    # When the sweep runs with a key
    key = secretbox.new_key()
    _use_key(monkeypatch, r, key)
    first = encrypt_stored()
    # Then every stored secret is encrypted, none in plain text, and they still sign the same
    assert (first.accounts, first.subscriptions, first.encrypted, first.unchanged) == (2, 2, 3, 0)
    raw = b"".join(r.hvals(K.subs("acme")) + r.hvals(K.subs("other")))
    assert b"whsec_" not in raw and count_plaintext() == 0
    assert subscriptions.get("acme", a.id).signing_secrets() == live[a.id]
    assert subscriptions.get("other", b.id).signing_secrets() == live[b.id]
    # And a second run changes nothing
    stored = r.hgetall(K.subs("acme"))
    assert encrypt_stored().encrypted == 0 and r.hgetall(K.subs("acme")) == stored
    # When the key is rotated (new key first), Then a run re-encrypts everything with it
    new = secretbox.new_key()
    _use_key(monkeypatch, r, f"{new},{key}")
    assert encrypt_stored().encrypted == 3
    _use_key(monkeypatch, r, new)  # the old key can go now
    assert subscriptions.get("acme", a.id).signing_secrets() == live[a.id]


def test_encrypt_stored_without_a_key_is_refused(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    from webhooks.secretsweep import encrypt_stored

    _use_flag(monkeypatch, r, True)
    with pytest.raises(ConfigurationError, match="WEBHOOKS_ENCRYPTION_KEY is not set"):
        encrypt_stored()
