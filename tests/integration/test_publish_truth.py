"""publish() against a Redis that is slow, not down: PublishError tells the truth.

A private redis-server with DEBUG enabled is put to sleep (DEBUG SLEEP) either before the
publish reads the account's subscriptions (then nothing was enqueued, and the error says so)
or while the enqueue script is in flight (then the event may be enqueued once Redis wakes:
the error says so and carries the event id, and publishing again with it enqueues nothing
twice).
"""
from __future__ import annotations

import threading
import uuid
from typing import Any, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import webhooks
from tests.support.redis_server import RedisServer
from tests.support.worker import wait_until
from webhooks import events
from webhooks.enqueue import DELIVERIES_QUEUE
from webhooks.state import DeliveryStore

pytestmark = pytest.mark.integration

SLEEP_S = 2.0


@pytest.fixture
def slow_redis(tmp_path, monkeypatch) -> Iterator[RedisServer]:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path / "redis", args=("--enable-debug-command", "local")).start()
    monkeypatch.setenv("WEBHOOKS_REDIS_URL", server.url)
    monkeypatch.setenv("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("WEBHOOKS_PUBLISH_TIMEOUT_S", "1")  # each try waits 0.5 s, one retry
    from webhooks import connection
    from webhooks.settings import reload_settings

    reload_settings()
    connection.reset()
    yield server
    server.stop()
    monkeypatch.undo()
    reload_settings()
    connection.reset()


def _asleep(server: RedisServer) -> bool:
    try:
        redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=0.05, socket_connect_timeout=0.05,
                    retry=Retry(NoBackoff(), 0)).ping()  # redis-py would otherwise retry until it wakes
        return False
    except redis.RedisError:  # a timeout, while connecting or waiting for the answer
        return True


def _put_to_sleep(server: RedisServer) -> None:
    """DEBUG SLEEP from another connection; returns once the server has stopped answering."""
    threading.Thread(target=lambda: server.client().execute_command("DEBUG", "SLEEP", SLEEP_S), daemon=True).start()
    wait_until(lambda: _asleep(server), 5, message="the Redis to fall asleep")


def _queued(server: RedisServer) -> int:
    return int(server.client().llen(DELIVERIES_QUEUE))


def _account_with_a_subscription() -> str:
    account = f"acct-{uuid.uuid4().hex[:10]}"
    webhooks.subscriptions.create(account, "https://127.0.0.1/hook", ["message.sent"])
    return account


def test_a_timeout_while_the_enqueue_is_in_flight_says_it_may_have_enqueued(slow_redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    account = _account_with_a_subscription()
    webhooks.publish(account, "message.sent", events.sample("message.sent"))  # a running producer: script loaded
    real = DeliveryStore.publish

    def sleepy(store: DeliveryStore, *a: Any, **k: Any) -> Any:
        _put_to_sleep(slow_redis)  # the subscriptions were read; the script goes to a sleeping Redis
        return real(store, *a, **k)

    monkeypatch.setattr(DeliveryStore, "publish", sleepy)
    # When publish times out while its enqueue script waits in the sleeping Redis
    with pytest.raises(webhooks.PublishError) as err:
        webhooks.publish(account, "message.sent", events.sample("message.sent"))
    monkeypatch.setattr(DeliveryStore, "publish", real)
    # Then the error does not claim nothing was enqueued, and carries the generated event id
    assert err.value.maybe_enqueued is True
    assert "nothing was enqueued" not in str(err.value)
    assert err.value.event_id and err.value.event_id.startswith("evt_") and err.value.event_id in str(err.value)
    # And once Redis wakes, the event was in fact enqueued (once, though the client retried):
    # the warm-up event's delivery and this one's
    wait_until(lambda: not _asleep(slow_redis) and _queued(slow_redis) == 2, SLEEP_S + 5,
               message="the in-flight script to run once Redis wakes")
    # When the caller publishes again with that event id, Then it is not enqueued twice
    again = webhooks.publish(account, "message.sent", events.sample("message.sent"), event_id=err.value.event_id)
    assert again.duplicate and again.deliveries == 0
    assert _queued(slow_redis) == 2


def test_a_timeout_before_the_enqueue_says_nothing_was_enqueued(slow_redis) -> None:  # type: ignore[no-untyped-def]
    account = _account_with_a_subscription()
    _put_to_sleep(slow_redis)  # asleep before publish reads the subscriptions
    with pytest.raises(webhooks.PublishError) as err:
        webhooks.publish(account, "message.sent", events.sample("message.sent"))
    assert err.value.maybe_enqueued is False and "nothing was enqueued" in str(err.value)
    wait_until(lambda: not _asleep(slow_redis), SLEEP_S + 5, message="Redis to wake")
    assert _queued(slow_redis) == 0
    # and publishing again with the same id enqueues it, once
    assert webhooks.publish(account, "message.sent", events.sample("message.sent"),
                            event_id=err.value.event_id).deliveries == 1
