"""publish() matches against its copy of the account's subscriptions (webhooks.subcache), and
the enqueue script refuses a copy that is no longer current: on a real Redis, a subscription
deleted, disabled or added after the copy was made (by another process, or in the window
between the match and the script) is honoured, and the publish costs one more call, not more.
Messages the script builds from its template are run by a real worker."""
from __future__ import annotations

from typing import Any, Callable

import pytest

import webhooks
from tests.support.worker import wait_until
from webhooks import events, records, subscriptions
from webhooks.connection import get_redis
from webhooks.keys import K
from webhooks.state import DeliveryStore, scripts

pytestmark = pytest.mark.integration


@pytest.fixture
def script_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = scripts.Script.__call__

    def spy(self: scripts.Script, client: Any, keys: Any, args: Any) -> Any:
        calls.append(self.name)
        return real(self, client, keys, args)

    monkeypatch.setattr(scripts.Script, "__call__", spy)
    return calls


def _delivered_to(published: webhooks.PublishedEvent) -> set[str]:
    return {get_redis().hget(K.delivery(d), "sub").decode() for d in published.delivery_ids}


def _publish(account: str) -> webhooks.PublishedEvent:
    return webhooks.publish(account, "message.sent", events.sample("message.sent"))


CHANGES: dict[str, Callable[[str, list[subscriptions.Subscription]], set[str]]] = {
    # each changes the account's subscriptions and returns the ids that must get the next event
    "deleted": lambda a, subs: (subscriptions.delete(a, subs[0].id), {subs[1].id})[1],
    "disabled": lambda a, subs: (subscriptions.disable(a, subs[0].id), {subs[1].id})[1],
    "added": lambda a, subs: {subs[0].id, subs[1].id,
                              subscriptions.create(a, "https://127.0.0.1/c", ["message.sent"]).id},
    "events changed": lambda a, subs: (subscriptions.update(a, subs[0].id, events=["rating.submitted"]), {subs[1].id})[1],
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_after_the_copy_was_made_is_honoured(configured, account, script_calls, change) -> None:  # type: ignore[no-untyped-def]
    # Given an account whose subscriptions this process has matched against already
    subs = [subscriptions.create(account, f"https://127.0.0.1/{i}", ["message.sent"]) for i in range(2)]
    assert _delivered_to(_publish(account)) == {s.id for s in subs}
    script_calls.clear()
    # When a subscription changes (as another process would change it: the copy is not told)
    expected = CHANGES[change](account, subs)
    # Then the next publish enqueues for the subscriptions as they are now, in two calls
    assert _delivered_to(_publish(account)) == expected
    assert script_calls == ["publish", "publish"]
    # and the one after that in one call again
    script_calls.clear()
    assert _delivered_to(_publish(account)) == expected and script_calls == ["publish"]


def test_a_change_between_the_match_and_the_enqueue_is_honoured(configured, account, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given an account with two subscriptions, matched against already
    keep, gone = (subscriptions.create(account, f"https://127.0.0.1/{i}", ["message.sent"]) for i in range(2))
    _publish(account)
    real = DeliveryStore.publish
    deleted: list[bool] = []

    def racing(store: DeliveryStore, *a: Any, **k: Any) -> Any:
        if not deleted:  # another process deletes one after this publish matched, before it enqueues
            subscriptions.delete(account, gone.id)
            deleted.append(True)
        return real(store, *a, **k)

    monkeypatch.setattr(DeliveryStore, "publish", racing)
    # When the event is published, Then the deleted subscription gets nothing
    published = _publish(account)
    assert _delivered_to(published) == {keep.id} and published.deliveries == 1


def test_subscriptions_stored_before_versions_existed_are_read_and_get_a_version(configured, account, script_calls) -> None:  # type: ignore[no-untyped-def]
    # Given a subscription stored by a release that kept no version
    sub = subscriptions.create(account, "https://127.0.0.1/a", ["message.sent"])
    r = get_redis()
    r.delete(K.subs_version(account))
    # When events are published
    first, second = _publish(account), _publish(account)
    # Then both reach it, and the first publish gave the account a version
    assert _delivered_to(first) == _delivered_to(second) == {sub.id}
    assert r.get(K.subs_version(account))
    # and a change made by this release is seen by a process that held the old copy
    subscriptions.disable(account, sub.id)
    assert _publish(account).deliveries == 0


def test_an_account_without_subscriptions_costs_no_key(configured, account) -> None:  # type: ignore[no-untyped-def]
    assert _publish(account).deliveries == 0 and _publish(account).deliveries == 0
    assert get_redis().keys(f"*{account}*") == []
    # and its first subscription is seen by the next publish
    sub = subscriptions.create(account, "https://127.0.0.1/a", ["message.sent"])
    assert _delivered_to(_publish(account)) == {sub.id}


def test_messages_built_by_the_script_are_run_and_acked_by_a_real_worker(configured, worker, receiver, account) -> None:  # type: ignore[no-untyped-def]
    # Given three endpoints
    for i in range(3):
        subscriptions.create(account, receiver.url(f"/m{i}"), ["message.sent"])
    # When two events are published (six messages from one template)
    published = [_publish(account), _publish(account)]
    ids = [d for p in published for d in p.delivery_ids]
    # Then every delivery is made once, and no message is left unacknowledged
    receiver.wait_for(lambda r: sum(len(r.requests_for(f"/m{i}")) for i in range(3)) == 6, timeout_s=20)
    wait_until(lambda: all(records.load(d)["status"] == "delivered" for d in ids), 10, message="records delivered")
    unacked = get_redis().hkeys("unacked")
    wait_until(lambda: not any(f"{d}:publish".encode() in get_redis().hkeys("unacked") for d in ids), 10,
               message=f"the publish messages acked (unacked: {unacked[:5]})")
