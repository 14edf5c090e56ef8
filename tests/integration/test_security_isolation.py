"""Tenant isolation and replay rules, through the Python API and the CLI, on a real worker and Redis."""
from __future__ import annotations

import json
from typing import Any

import pytest

import webhooks
from webhooks import audit, deadletters, events, records, subscriptions
from webhooks.errors import NotFound
from webhooks.keys import K
from tests.support.cli import run_cli as _cli
from tests.support.receiver import Reply
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration


# Other test sessions may run workers on the shared integration Redis at the same time, with
# another test CA or other settings; a worker that cannot verify our receiver would take our
# deliveries. So these tests run on a redis-server of their own.


def _dead_letter_of(account: str, receiver: Any, path: str, event_type: str = "rating.submitted") -> tuple[subscriptions.Subscription, str]:
    """A subscription of ``account`` on ``path`` and one of its deliveries, dead after 2 attempts of 500."""
    sub = subscriptions.create(account, receiver.url(path), [event_type], retry_schedule="0.2")
    receiver.script(path, [Reply(status=500, body=b"down")] * 2)
    published = webhooks.publish(account, event_type, events.sample(event_type))
    assert published.deliveries == 1
    did = published.delivery_ids[0]
    wait_until(lambda: any(e["delivery_id"] == did for e in deadletters.list_dead(account)), 40, message=f"dead letter {did}")
    return sub, did


def _victim_state(r: Any, account: str) -> tuple[Any, ...]:
    return (sorted(r.hgetall(K.subs(account)).items()), sorted(r.hgetall(K.dead(account)).items()),
            r.lrange(K.audit(account), 0, -1))


def test_another_accounts_ids_are_not_found_in_every_cli_command(configured, own_worker, receiver, account):
    from webhooks.connection import get_redis

    # Given account "victim" with a subscription and a dead letter, and an empty account "mallory"
    victim, mallory = account, f"{account}-mallory"
    sub, did = _dead_letter_of(victim, receiver, "/victim")
    r = get_redis()
    before = _victim_state(r, victim)
    seen = len(receiver.requests_for("/victim"))
    # When mallory names victim's ids in every command that takes one
    commands = [
        ["subscriptions", "show", sub.id, "--reveal"],
        ["subscriptions", "update", sub.id, "--url", receiver.url("/mallory")],
        ["subscriptions", "disable", sub.id],
        ["subscriptions", "enable", sub.id],
        ["subscriptions", "rotate-secret", sub.id, "--grace", "0s"],
        ["subscriptions", "delete", sub.id],
        ["subscriptions", "preview", sub.id, "--sample", "rating.submitted"],
        ["send-test", sub.id],
        ["dead-letters", "show", did],
        ["dead-letters", "replay", did],
        ["dead-letters", "purge", did, "--yes"],
    ]
    for args in commands:
        res = _cli(configured, *args, "--account", mallory)
        # Then each fails with "not found" in mallory's account, showing nothing of victim's
        assert res.returncode == 1, (args, res.returncode, res.stdout, res.stderr)
        assert f"in account {mallory}" in res.stderr and victim + " " not in res.stderr, args
        assert res.stdout == "", args
        assert "whsec_" not in res.stdout + res.stderr
    # And the listings of mallory show none of victim's things
    for args in (["subscriptions", "list"], ["dead-letters", "list"], ["deliveries"], ["audit"]):
        res = _cli(configured, *args, "--account", mallory, "--json")
        assert res.returncode == 0 and json.loads(res.stdout) == [], (args, res.stdout)
    # And victim's subscription, dead letter and audit are unchanged; nothing was re-sent
    assert _victim_state(r, victim) == before
    assert len(receiver.requests_for("/victim")) == seen and receiver.requests_for("/mallory") == []


def test_another_accounts_ids_are_not_found_through_the_python_api(configured, own_worker, receiver, account):
    victim, mallory = account, f"{account}-mallory"
    sub, did = _dead_letter_of(victim, receiver, "/victim-api")
    for call in (lambda: subscriptions.get(mallory, sub.id), lambda: deadletters.get(mallory, did),
                 lambda: deadletters.replay(mallory, [did]), lambda: deadletters.purge(mallory, [did])):
        with pytest.raises(NotFound, match=mallory):
            call()
    assert deadletters.list_dead(mallory) == [] and records.list_for_account(mallory) == []
    assert deadletters.replay(mallory, all_=True) == {"replayed": [], "skipped": {}}
    assert [e["delivery_id"] for e in deadletters.list_dead(victim)] == [did]
    # A publish to mallory never reaches victim's endpoint
    assert webhooks.publish(mallory, "rating.submitted", events.sample("rating.submitted")).deliveries == 0


def test_replay_goes_only_to_its_own_subscription_and_only_while_it_exists_and_is_enabled(configured, own_worker, receiver, account):
    # Given two subscriptions of one account, each with a dead letter
    a, did_a = _dead_letter_of(account, receiver, "/a")
    b, did_b = _dead_letter_of(account, receiver, "/b", "conversation.assigned")
    sent_a, sent_b = len(receiver.requests_for("/a")), len(receiver.requests_for("/b"))

    # When a's is replayed while a is disabled, Then it is skipped with a clear message and kept
    subscriptions.disable(account, a.id, actor="ops")
    res = _cli(configured, "dead-letters", "replay", did_a, "--account", account, "--actor", "ops")
    assert res.returncode == 1
    assert f"skipped {did_a}: subscription {a.id} is disabled (enable it first)" in res.stderr
    assert [e["delivery_id"] for e in deadletters.list_dead(account, subscription_id=a.id)] == [did_a]

    # When b is deleted and b's is replayed, Then it is skipped: the subscription no longer exists
    subscriptions.delete(account, b.id, actor="ops")
    res = _cli(configured, "dead-letters", "replay", did_b, "--account", account)
    assert res.returncode == 1 and f"skipped {did_b}: subscription no longer exists" in res.stderr

    # When a is enabled again and everything is replayed
    subscriptions.enable(account, a.id, actor="ops")
    res = _cli(configured, "dead-letters", "replay", "--all", "--account", account, "--actor", "ops", "--json")
    result = json.loads(res.stdout)
    assert result["replayed"] == [did_a] and list(result["skipped"]) == [did_b]
    # Then a's dead letter is delivered to a's URL only, with its own webhook-id, and b gets nothing
    receiver.wait_for(lambda r: len(r.requests_for("/a")) == sent_a + 1, timeout_s=30)
    assert receiver.requests_for("/a")[-1].headers["webhook-id"] == did_a
    webhooks.verify(a.signing_secrets()[0], receiver.requests_for("/a")[-1].body, receiver.requests_for("/a")[-1].headers)
    wait_until(lambda: records.load(did_a)["status"] == "delivered", 20, message="replayed delivery delivered")
    assert len(receiver.requests_for("/b")) == sent_b
    # And the audit holds disable, delete, enable and one replay, attributed to "ops"
    actions = [(e["action"], e["actor"]) for e in audit.entries(account)]
    assert actions[:4] == [("replay", "ops"), ("enable", "ops"), ("delete", "ops"), ("disable", "ops")]


@pytest.mark.parametrize("hostile", ["victim:idx", "*", "victim\n", "../victim", ""])
def test_hostile_account_names_on_the_cli_never_reach_another_accounts_data(configured, hostile):
    # Given any account name that is not a plain one (key separators, globs, newline, path, empty)
    for args in (["subscriptions", "list"], ["dead-letters", "list"], ["deliveries"], ["audit"], ["status"]):
        res = _cli(configured, *args, "--account", hostile, "--json")
        # Then the command refuses it as bad input (exit 2) with one line naming the rule
        assert res.returncode == 2, (args, res.returncode, res.stdout, res.stderr)
        assert "account must be" in res.stderr and res.stdout == ""


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str]) -> dict[str, str]:
    return own_env
