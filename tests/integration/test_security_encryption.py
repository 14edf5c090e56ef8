"""Encryption at rest on a real Redis and worker: nothing plaintext stored, delivery still signs,
a wrong or missing key is a clear error."""
from __future__ import annotations

import json
from typing import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

import webhooks
from webhooks import events, secretbox, subscriptions
from webhooks.keys import K
from tests.support.redis_server import RedisServer
from tests.support.cli import run_cli as _cli
from tests.support.worker import Worker

pytestmark = pytest.mark.integration

# Its own redis-server: a worker without the key (another test session's) must not take these
# deliveries.
KEY = secretbox.new_key()


@pytest.fixture(scope="module")
def key_env(stack_env: dict[str, str], own_redis: RedisServer) -> dict[str, str]:
    return {**stack_env, "WEBHOOKS_REDIS_URL": own_redis.url, "WEBHOOKS_ENCRYPTION_KEY": KEY}


@pytest.fixture(scope="module")
def key_worker(key_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(key_env, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield w
    w.stop()


def test_with_the_key_set_secrets_in_redis_are_not_plaintext_and_the_worker_still_delivers(configured, key_worker, receiver, account):
    from webhooks.connection import get_redis

    # Given a subscription created (by the CLI, as an operator would) with the key set
    made = _cli(configured, "subscriptions", "create", "--account", account, "--url", receiver.url("/enc"),
                "--event", "message.sent", "--json")
    assert made.returncode == 0, made.stderr
    shown = json.loads(made.stdout)
    secret, sub_id = shown["secret"], shown["id"]
    # Then Redis holds it only encrypted: no whsec_, no key bytes, in the record or the audit
    r = get_redis()
    stored = r.hget(K.subs(account), sub_id) + b"".join(r.lrange(K.audit(account), 0, -1))
    assert secret.encode() not in stored and secret[len("whsec_"):].encode() not in stored and b"whsec_" not in stored
    assert json.loads(r.hget(K.subs(account), sub_id))["secret"].startswith("enc:v1:")
    # When an event is published, Then the worker (with the key) delivers it, signed with that secret
    published = webhooks.publish(account, "message.sent", events.sample("message.sent"))
    receiver.wait_for(lambda rc: len(rc.requests_for("/enc")) == 1, timeout_s=30)
    req = receiver.requests_for("/enc")[0]
    assert Webhook(secret).verify(req.body, req.headers)["id"] == published.id


@pytest.mark.parametrize(("key", "says"), [
    (secretbox.new_key(), "could not be decrypted: WEBHOOKS_ENCRYPTION_KEY is not the key it was encrypted with"),
    ("", "is encrypted but WEBHOOKS_ENCRYPTION_KEY is not set"),
])
def test_a_wrong_or_missing_key_is_one_clear_sentence_and_changes_nothing(configured, account, key, says):
    # Given a subscription whose secret is encrypted with KEY
    sub = subscriptions.create(account, "https://127.0.0.1:9/hook", ["*"])
    env = {**configured, "WEBHOOKS_ENCRYPTION_KEY": key}
    # When an operator reveals or rotates it with a wrong or no key
    for args in (["subscriptions", "show", sub.id, "--reveal"], ["subscriptions", "rotate-secret", sub.id, "--grace", "1h"]):
        res = _cli(env, *args, "--account", account)
        # Then exit 1 with one sentence naming the cause, no traceback, no secret
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert res.stderr.strip() == f"error: a subscription secret {says}", res.stderr
        assert "Traceback" not in res.stderr and "whsec_" not in res.stdout + res.stderr
    # And listings (secrets hidden) still work, and the secret is unchanged
    listed = _cli(env, "subscriptions", "list", "--account", account, "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["id"] == sub.id
    assert subscriptions.get(account, sub.id).signing_secrets() == sub.signing_secrets()


def test_a_malformed_key_is_refused_with_the_fix(configured, account):
    res = _cli({**configured, "WEBHOOKS_ENCRYPTION_KEY": "not-a-fernet-key"}, "subscriptions", "create",
               "--account", account, "--url", "https://127.0.0.1:9/hook", "--event", "*")
    assert res.returncode == 1 and "webhooks keygen" in res.stderr and "not-a-fernet-key" not in res.stderr
    assert subscriptions.list_subscriptions(account) == []


@pytest.fixture(scope="module")
def producer_env(key_env: dict[str, str]) -> dict[str, str]:
    return key_env
