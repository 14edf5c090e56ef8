"""End to end: publish() in this process, a real worker process, a real HTTPS receiver."""
from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook

import webhooks
from webhooks import deadletters, events, records
from tests.support.receiver import Reply
from tests.support.cli import run_cli as _cli
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration


def test_one_event_reaches_the_three_subscribers_of_its_account_only(configured, worker, receiver, account):
    # Given three subscriptions in one account and one in another
    subs = [webhooks.subscriptions.create(account, receiver.url(f"/a{i}"), ["conversation.ended"]) for i in range(3)]
    other = f"{account}-other"
    webhooks.subscriptions.create(other, receiver.url("/other"), ["*"])
    # When the chat backend publishes a conversation.ended event
    published = webhooks.publish(account, "conversation.ended", events.sample("conversation.ended"))
    # Then each of the three endpoints gets it once, signed, and the other account's gets nothing
    assert published.deliveries == 3
    receiver.wait_for(lambda r: all(len(r.requests_for(f"/a{i}")) == 1 for i in range(3)), timeout_s=20)
    for i, sub in enumerate(subs):
        req = receiver.requests_for(f"/a{i}")[0]
        payload = Webhook(sub.signing_secrets()[0]).verify(req.body, req.headers)
        assert payload["type"] == "conversation.ended"
        assert payload["data"]["transcript"] == events.sample("conversation.ended")["transcript"]
        assert req.headers["webhook-id"].startswith("msg_")
        assert webhooks.verify(sub.signing_secrets()[0], req.body, req.headers)["id"] == published.id
    assert len({receiver.requests_for(f"/a{i}")[0].headers["webhook-id"] for i in range(3)}) == 3
    wait_until(lambda: all(records.load(d)["status"] == "delivered" for d in published.delivery_ids), 10, message="records delivered")
    assert receiver.requests_for("/other") == []


def test_500_then_200_is_retried_once_with_the_same_webhook_id(configured, worker, receiver, account):
    # Given an endpoint that answers 500 once, then 200
    sub = webhooks.subscriptions.create(account, receiver.url("/flaky"), ["message.sent"], retry_schedule="0.2,1,1")
    receiver.script("/flaky", [Reply(status=500)])
    # When an event is published
    published = webhooks.publish(account, "message.sent", events.sample("message.sent"))
    # Then it arrives twice with the same webhook-id, and two attempts are logged
    receiver.wait_for(lambda r: len(r.requests_for("/flaky")) == 2, timeout_s=20)
    first, second = receiver.requests_for("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == published.delivery_ids[0]
    assert first.body == second.body
    did = published.delivery_ids[0]
    wait_until(lambda: records.load(did)["status"] == "delivered", 10, message="delivered status")
    log = records.attempts(did)
    assert [a["status"] for a in log] == [500, 200]
    assert [a["verdict"] for a in log] == ["retry", "delivered"]
    assert all(a["duration_ms"] >= 0 for a in log)
    Webhook(sub.signing_secrets()[0]).verify(second.body, second.headers)


def test_an_endpoint_that_always_fails_leaves_one_dead_letter_that_replay_delivers(configured, worker, receiver, account):
    # Given an endpoint that always answers 503 and a short schedule (3 attempts)
    sub = webhooks.subscriptions.create(account, receiver.url("/down"), ["rating.submitted"], retry_schedule="0.2,0.3")
    receiver.set_default(Reply(status=500, body=b"down"))
    # When an event is published
    published = webhooks.publish(account, "rating.submitted", events.sample("rating.submitted"))
    did = published.delivery_ids[0]
    # Then after its schedule it is exactly one dead letter, with three attempts logged
    wait_until(lambda: len(deadletters.list_dead(account)) == 1, 30, message="one dead letter")
    entry = deadletters.list_dead(account)[0]
    assert entry["delivery_id"] == did and entry["reason"] == "exhausted" and entry["status"] == 500
    assert len(receiver.requests_for("/down")) == 3
    assert [a["status"] for a in records.attempts(did)] == [500, 500, 500]
    # When the endpoint recovers and the operator replays with the CLI
    receiver.set_default(Reply(status=200))
    result = _cli(configured, "dead-letters", "replay", "--account", account, "--all")
    assert result.returncode == 0, result.stderr
    assert "replayed 1" in result.stdout
    # Then it is delivered with the same webhook-id and a fresh, valid signature
    receiver.wait_for(lambda r: len(r.requests_for("/down")) == 4, timeout_s=20)
    last = receiver.requests_for("/down")[-1]
    assert last.headers["webhook-id"] == did
    Webhook(sub.signing_secrets()[0]).verify(last.body, last.headers)
    wait_until(lambda: records.load(did)["status"] == "delivered", 10, message="replayed delivery delivered")
    assert deadletters.list_dead(account) == []


def test_publish_raises_publish_error_within_the_bound_when_redis_is_unreachable(configured, monkeypatch, account):
    from webhooks.settings import reload_settings

    # Given Redis is unreachable (nothing listens on the port)
    monkeypatch.setenv("WEBHOOKS_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("WEBHOOKS_PUBLISH_TIMEOUT_S", "5")
    reload_settings()
    # When publishing, Then PublishError comes fast, naming the event and saying nothing was enqueued
    started = time.monotonic()
    with pytest.raises(webhooks.PublishError, match="nothing was enqueued"):
        webhooks.publish(account, "message.sent", events.sample("message.sent"))
    assert time.monotonic() - started < 5


def test_publish_raises_within_the_bound_when_redis_hangs(configured, monkeypatch, account):
    import socket
    import threading

    from webhooks.settings import reload_settings

    # Given a "Redis" that accepts connections and never answers
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        monkeypatch.setenv("WEBHOOKS_REDIS_URL", f"redis://127.0.0.1:{srv.getsockname()[1]}/0")
        monkeypatch.setenv("WEBHOOKS_PUBLISH_TIMEOUT_S", "2")
        reload_settings()
        started = time.monotonic()
        with pytest.raises(webhooks.PublishError):
            webhooks.publish(account, "message.sent", events.sample("message.sent"))
        # Then it gave up within the bound (2 s), not minutes
        assert time.monotonic() - started < 2.5
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()
