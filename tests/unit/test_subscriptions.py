"""The subscription store on fakeredis: secrets, rotation, tenant isolation, listing safety."""
from __future__ import annotations

import base64
import json
import time
from typing import Iterator

import fakeredis
import pytest

from webhooks import signing, subscriptions
from webhooks.errors import NotFound, ValidationError
from webhooks.keys import K

URL = "https://127.0.0.1:8443/hook"




def _stored(r: fakeredis.FakeRedis, account: str) -> bytes:
    return b"".join(r.hvals(K.subs(account)))


# --- secrets ------------------------------------------------------------------------------------
def test_a_generated_secret_is_whsec_and_32_random_bytes(r: fakeredis.FakeRedis) -> None:
    # When two subscriptions are created without a secret
    a = subscriptions.create("acme", URL, ["message.sent"])
    b = subscriptions.create("acme", URL, ["message.sent"])
    # Then each has a whsec_ secret of 32 bytes, and they differ
    for sub in (a, b):
        plain = sub.signing_secrets()[0]
        assert plain.startswith("whsec_")
        assert len(base64.b64decode(plain[len("whsec_"):])) == 32
    assert a.signing_secrets() != b.signing_secrets()


def test_a_secret_is_hidden_in_repr_and_listings_and_shown_only_with_reveal(r: fakeredis.FakeRedis) -> None:
    # Given a subscription
    sub = subscriptions.create("acme", URL, ["message.sent"])
    plain = sub.signing_secrets()[0]
    # Then neither repr nor the listing-safe view shows it
    assert plain not in repr(sub)
    hidden = sub.public()
    assert plain not in json.dumps(hidden)
    assert hidden["secret"] == "whsec_••••••••"
    assert "previous_secrets" not in hidden
    # And the explicit reveal does
    assert sub.public(reveal=True)["secret"] == plain


def test_a_bad_given_secret_is_refused_without_echoing_it(r: fakeredis.FakeRedis) -> None:
    # Given a secret that is too short to be a key
    weak = "whsec_" + base64.b64encode(b"only-sixteen-byt").decode()
    # When it is used, Then ValidationError names the field but not the value
    with pytest.raises(ValidationError) as info:
        subscriptions.create("acme", URL, ["message.sent"], secret=weak)
    assert "secret" in info.value.errors
    assert weak not in str(info.value) and weak[6:] not in str(info.value)
    assert subscriptions.list_subscriptions("acme") == []


# --- rotation -----------------------------------------------------------------------------------
def test_during_the_grace_period_both_secrets_sign_and_after_it_only_the_new(r: fakeredis.FakeRedis) -> None:
    # Given a subscription with secret A
    sub = subscriptions.create("acme", URL, ["message.sent"])
    old = sub.signing_secrets()[0]
    # When it is rotated with a one-hour grace period
    before = time.time()
    rotated = subscriptions.rotate_secret("acme", sub.id, grace_s=3600)
    new = rotated.signing_secrets()[0]
    # Then the new secret signs first, and the old one still signs during the grace period
    assert new != old
    assert rotated.signing_secrets(now=before + 10) == [new, old]
    body = b'{"type":"message.sent"}'
    headers = signing.signed_headers(rotated.signing_secrets(now=before + 10), "msg_1", body, now=before + 10)
    assert signing.verify(old, body, headers, now=before + 10)
    assert signing.verify(new, body, headers, now=before + 10)
    # And after the grace period only the new one signs
    after = before + 3600 + 5
    assert rotated.signing_secrets(now=after) == [new]
    late = signing.signed_headers(rotated.signing_secrets(now=after), "msg_2", body, now=after)
    assert signing.verify(new, body, late, now=after)
    with pytest.raises(signing.SignatureError):
        signing.verify(old, body, late, now=after)


def test_the_default_grace_is_24_hours_and_more_than_7_days_is_refused(r: fakeredis.FakeRedis) -> None:
    sub = subscriptions.create("acme", URL, ["message.sent"])
    # When rotated with the default grace
    started = time.time()
    rotated = subscriptions.rotate_secret("acme", sub.id)
    # Then the old secret is live for 24 h
    until = rotated.public()["rotation_grace_until"]
    assert started + 24 * 3600 - 1 <= until <= time.time() + 24 * 3600 + 1
    # And a grace over 7 days (or negative) is a ValidationError that changes nothing
    for bad in (7 * 24 * 3600 + 1, -1):
        with pytest.raises(ValidationError, match="7 days"):
            subscriptions.rotate_secret("acme", sub.id, grace_s=bad)
    assert subscriptions.get("acme", sub.id).signing_secrets() == rotated.signing_secrets()


def test_a_zero_grace_rotation_retires_the_old_secret_at_once(r: fakeredis.FakeRedis) -> None:
    sub = subscriptions.create("acme", URL, ["message.sent"])
    old = sub.signing_secrets()[0]
    rotated = subscriptions.rotate_secret("acme", sub.id, grace_s=0)
    assert old not in rotated.signing_secrets()
    assert len(rotated.signing_secrets()) == 1


def test_a_rotation_with_reveal_lists_the_secrets_still_in_grace(r: fakeredis.FakeRedis) -> None:
    sub = subscriptions.create("acme", URL, ["message.sent"])
    old = sub.signing_secrets()[0]
    rotated = subscriptions.rotate_secret("acme", sub.id, grace_s=600)
    shown = rotated.public(reveal=True)
    assert shown["previous_secrets"] == [old]
    assert old not in json.dumps(rotated.public())


# --- tenant isolation ---------------------------------------------------------------------------
def test_another_accounts_subscription_id_is_not_found_for_every_operation(r: fakeredis.FakeRedis) -> None:
    # Given a subscription of account "victim"
    theirs = subscriptions.create("victim", URL, ["*"], description="theirs")
    before = _stored(r, "victim")
    # When account "mallory" uses its id in every operation
    attempts = {
        "get": lambda: subscriptions.get("mallory", theirs.id),
        "update": lambda: subscriptions.update("mallory", theirs.id, url="https://127.0.0.2/evil"),
        "disable": lambda: subscriptions.disable("mallory", theirs.id),
        "enable": lambda: subscriptions.enable("mallory", theirs.id),
        "delete": lambda: subscriptions.delete("mallory", theirs.id),
        "rotate": lambda: subscriptions.rotate_secret("mallory", theirs.id, grace_s=0),
    }
    for name, call in attempts.items():
        # Then each is NotFound naming only the asking account
        with pytest.raises(NotFound) as info:
            call()
        assert "mallory" in str(info.value) and "victim" not in str(info.value), name
    # And nothing changed on the victim's side, and mallory has nothing
    assert _stored(r, "victim") == before
    assert subscriptions.list_subscriptions("mallory") == []
    assert r.llen(K.audit("mallory")) == 0


def test_listing_shows_only_the_accounts_own_subscriptions(r: fakeredis.FakeRedis) -> None:
    mine = [subscriptions.create("acme", URL, ["*"]) for _ in range(2)]
    subscriptions.create("globex", URL, ["*"])
    assert [s.id for s in subscriptions.list_subscriptions("acme")] == [s.id for s in mine]
    assert {s.account for s in subscriptions.list_subscriptions("globex")} == {"globex"}


@pytest.mark.parametrize("account", ["", "a" * 200, "acme:other", "../acme", "acme*", "ac me", "acme\n"])
def test_account_names_that_could_reach_another_key_are_refused(r: fakeredis.FakeRedis, account: str) -> None:
    # Given a hostile account name (empty, huge, key separators, glob, whitespace)
    # When it is used, Then ValidationError, and nothing is written
    with pytest.raises(ValidationError):
        subscriptions.create(account, URL, ["*"])
    with pytest.raises(ValidationError):
        subscriptions.list_subscriptions(account)
    assert r.keys("wh:subs:*") == []


def _with_a_key(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    from webhooks import connection, secretbox
    from webhooks.settings import reload_settings

    monkeypatch.setenv("WEBHOOKS_ENCRYPTION_KEY", secretbox.new_key())
    reload_settings()
    monkeypatch.setattr(connection, "_client", r)


def _writers() -> dict[str, "object"]:
    from webhooks import listening, secretsweep

    def encrypt(r: fakeredis.FakeRedis, sub: subscriptions.Subscription, monkeypatch: pytest.MonkeyPatch) -> None:
        _with_a_key(r, monkeypatch)
        assert secretsweep.encrypt_stored().encrypted == 1

    def listen(r: fakeredis.FakeRedis, sub: subscriptions.Subscription, monkeypatch: pytest.MonkeyPatch) -> None:
        _with_a_key(r, monkeypatch)
        listening.create_listener("acme", "127.0.0.1", 8765, ["*"])

    def enable(r: fakeredis.FakeRedis, sub: subscriptions.Subscription, monkeypatch: pytest.MonkeyPatch) -> None:
        subscriptions.disable("acme", sub.id)
        r.delete(K.subs_version("acme"))  # only enable's own write can set it again
        subscriptions.enable("acme", sub.id)

    return {
        "create": lambda r, sub, mp: subscriptions.create("acme", URL, ["*"]),
        "update": lambda r, sub, mp: subscriptions.update("acme", sub.id, description="new"),
        "disable": lambda r, sub, mp: subscriptions.disable("acme", sub.id),
        "enable": enable,
        "rotate_secret": lambda r, sub, mp: subscriptions.rotate_secret("acme", sub.id, grace_s=0),
        "delete": lambda r, sub, mp: subscriptions.delete("acme", sub.id),
        "listening.create_listener": listen,
        "secretsweep.encrypt_stored": encrypt,
    }


@pytest.mark.parametrize("writer", list(_writers()))
def test_every_writer_of_an_accounts_subscriptions_replaces_their_version(r: fakeredis.FakeRedis,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          writer: str) -> None:
    # Given an account with a subscription, and its subscriptions version
    from webhooks import listening

    if writer.startswith("listening") and listening.local_identity() is None:
        pytest.skip("needs Linux /proc")
    sub = subscriptions.create("acme", URL, ["*"])
    before = r.get(K.subs_version("acme"))
    assert before
    # When the writer changes the account's subscriptions
    _writers()[writer](r, sub, monkeypatch)
    # Then the version is a new one (so no publisher matches against its old copy)
    after = r.get(K.subs_version("acme"))
    assert after and after != before
