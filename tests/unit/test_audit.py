"""The audit log on fakeredis: every administrative change is recorded, scoped, and secret-free."""
from __future__ import annotations

import json
import time

import fakeredis
import pytest

from webhooks import audit, deadletters, subscriptions
from webhooks.errors import NotFound
from webhooks.keys import K

URL = "https://127.0.0.1:8443/hook"
GIVEN_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="  # 32 bytes, base64




def _dead_letter(r: fakeredis.FakeRedis, account: str, sub_id: str, delivery_id: str) -> None:
    """A delivery of ``sub_id`` that died (as the worker leaves it)."""
    r.set(K.legacy_event("evt_1"), b'{"id":"evt_1"}')
    r.set(K.legacy_event_refs("evt_1"), 1)  # a record from before event ids were scoped by account
    r.hset(K.delivery(delivery_id), mapping={"account": account, "sub": sub_id, "evt": "evt_1", "type": "message.sent",
                                             "status": "retrying", "created": repr(time.time()), "attempts": 3})
    assert deadletters.record(delivery_id, "exhausted")


def test_every_administrative_change_is_recorded_with_when_what_and_who(r: fakeredis.FakeRedis) -> None:
    # Given an operator "ana" who creates, updates, rotates, disables, enables, replays, purges and deletes
    t0 = time.time()
    sub = subscriptions.create("acme", URL, ["message.sent"], secret=GIVEN_SECRET, actor="ana")
    subscriptions.update("acme", sub.id, events=["*"], description="crm", actor="ana")
    subscriptions.rotate_secret("acme", sub.id, grace_s=60, actor="ana")
    subscriptions.disable("acme", sub.id, reason="maintenance", actor="ana")
    subscriptions.enable("acme", sub.id, actor="ana")
    _dead_letter(r, "acme", sub.id, "msg_a")
    _dead_letter(r, "acme", sub.id, "msg_b")
    assert deadletters.replay("acme", ["msg_a"], actor="ana")["replayed"] == ["msg_a"]
    assert deadletters.purge("acme", ["msg_b"], actor="ana") == 1
    subscriptions.delete("acme", sub.id, actor="ana")
    # Then the audit lists each change, newest first, with time, account, subscription and actor
    entries = audit.entries("acme")
    assert [e["action"] for e in entries] == [
        "delete", "purge", "replay", "enable", "disable", "rotate-secret", "update", "create"]
    assert all(e["actor"] == "ana" and e["account"] == "acme" for e in entries)
    assert all(t0 - 1 <= e["at"] <= time.time() + 1 for e in entries)
    by_action = {e["action"]: e for e in entries}
    for action in ("create", "update", "rotate-secret", "disable", "enable", "delete"):
        assert by_action[action]["subscription_id"] == sub.id
    # And what changed is said
    assert by_action["create"]["changes"] == {"url": URL, "events": ["message.sent"]}
    assert by_action["update"]["changes"] == {"events": ["*"], "description": "crm"}
    assert by_action["rotate-secret"]["changes"] == {"grace_s": 60}
    assert by_action["disable"]["changes"] == {"reason": "maintenance"}
    assert by_action["replay"]["changes"]["count"] == 1
    assert by_action["purge"]["changes"] == {"count": 1}


def test_the_audit_never_holds_a_secret(r: fakeredis.FakeRedis) -> None:
    # Given a subscription made with a known secret and rotated twice (once to a given secret)
    sub = subscriptions.create("acme", URL, ["*"], secret=GIVEN_SECRET)
    rotated = subscriptions.rotate_secret("acme", sub.id, grace_s=60)
    third = "whsec_" + "eHl6eHl6eHl6eHl6eHl6eHl6eHl6eHl6eHl6eHl6eHk="
    subscriptions.rotate_secret("acme", sub.id, new_secret=third, grace_s=60)
    # Then no secret, nor its key part, is anywhere in the stored audit
    raw = b"".join(r.lrange(K.audit("acme"), 0, -1)).decode()
    for secret in (GIVEN_SECRET, rotated.signing_secrets()[0], third):
        assert secret not in raw and secret[len("whsec_"):] not in raw
    assert "whsec_" not in raw


def test_an_unattributed_change_is_recorded_with_no_actor(r: fakeredis.FakeRedis) -> None:
    subscriptions.create("acme", URL, ["*"])
    assert audit.entries("acme")[0]["actor"] is None


def test_the_audit_is_per_account_and_refused_changes_leave_no_entry(r: fakeredis.FakeRedis) -> None:
    # Given a subscription in "victim"
    theirs = subscriptions.create("victim", URL, ["*"], actor="v")
    # When "mallory" tries to change it, Then NotFound, and no audit entry appears anywhere
    with pytest.raises(NotFound):
        subscriptions.delete("mallory", theirs.id, actor="m")
    assert audit.entries("mallory") == []
    assert [e["action"] for e in audit.entries("victim")] == ["create"]


def test_a_replay_that_skips_everything_records_nothing(r: fakeredis.FakeRedis) -> None:
    # Given a dead letter whose subscription was then disabled
    sub = subscriptions.create("acme", URL, ["*"])
    _dead_letter(r, "acme", sub.id, "msg_a")
    subscriptions.disable("acme", sub.id)
    # When it is replayed, Then it is skipped with a reason, and the audit gains no "replay"
    result = deadletters.replay("acme", ["msg_a"])
    assert result["replayed"] == [] and "disabled" in result["skipped"]["msg_a"]
    assert "replay" not in [e["action"] for e in audit.entries("acme")]


def test_the_log_is_bounded(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "MAX_ENTRIES", 3)
    for i in range(5):
        audit.record("acme", "update", changes={"n": i})
    assert [e["changes"]["n"] for e in audit.entries("acme")] == [4, 3, 2]
    assert json.loads(r.lindex(K.audit("acme"), 0))["changes"] == {"n": 4}
