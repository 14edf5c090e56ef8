"""Secret rotation end to end: real worker, real HTTPS receiver, the standardwebhooks package verifying."""
from __future__ import annotations

import json
from datetime import datetime
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import webhooks
from webhooks import audit, events, subscriptions
from tests.support.cli import run_cli as _cli
from tests.support.worker import wait_until

pytestmark = pytest.mark.integration


# Other test sessions may run workers on the shared integration Redis at the same time, with
# another test CA or other settings; a worker that cannot verify our receiver would take our
# deliveries. So these tests run on a redis-server of their own.


GRACE_S = 6  # long enough for one delivery on a loaded machine, short enough to wait out


def _signatures(headers: dict[str, str]) -> list[str]:
    return headers["webhook-signature"].split(" ")


def test_old_and_new_secret_both_verify_during_the_grace_period_and_only_the_new_after(configured, own_worker, receiver, account):
    # Given a subscription whose receiver holds its first secret
    sub = subscriptions.create(account, receiver.url("/rot"), ["message.sent"])
    old = sub.signing_secrets()[0]
    webhooks.publish(account, "message.sent", events.sample("message.sent"))
    receiver.wait_for(lambda r: len(r.requests_for("/rot")) == 1, timeout_s=30)
    first = receiver.requests_for("/rot")[0]
    Webhook(old).verify(first.body, first.headers)
    assert len(_signatures(first.headers)) == 1

    # When the operator rotates the secret with the CLI, with a short grace period
    rotated = _cli(configured, "subscriptions", "rotate-secret", sub.id, "--account", account,
                   "--grace", f"{GRACE_S}s", "--actor", "ops@rotation-test", "--json")
    assert rotated.returncode == 0, rotated.stderr
    shown = json.loads(rotated.stdout)
    # (--json times are ISO 8601 UTC, docs/cli.md)
    new = shown["secret"]
    grace_until = datetime.fromisoformat(shown["rotation_grace_until"].replace("Z", "+00:00")).timestamp()
    assert new.startswith("whsec_") and new != old and shown["previous_secrets"] == [old]
    assert time.time() < grace_until <= time.time() + GRACE_S

    # And an event is published inside the grace period
    webhooks.publish(account, "message.sent", events.sample("message.sent"))
    receiver.wait_for(lambda r: len(r.requests_for("/rot")) == 2, timeout_s=30)
    during = receiver.requests_for("/rot")[1]
    assert int(during.headers["webhook-timestamp"]) < grace_until, "delivered after the grace period: machine too slow"
    # Then a receiver holding only the old secret and one holding only the new both verify it
    assert Webhook(old).verify(during.body, during.headers)["type"] == "message.sent"
    assert Webhook(new).verify(during.body, during.headers)["type"] == "message.sent"
    assert len(_signatures(during.headers)) == 2

    # When the grace period has passed and another event is published
    wait_until(lambda: time.time() > grace_until + 1, GRACE_S + 5, message="the end of the grace period")
    webhooks.publish(account, "message.sent", events.sample("message.sent"))
    receiver.wait_for(lambda r: len(r.requests_for("/rot")) == 3, timeout_s=30)
    after = receiver.requests_for("/rot")[2]
    # Then only the new secret verifies it; the old one is refused
    assert Webhook(new).verify(after.body, after.headers)["type"] == "message.sent"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)
    assert len(_signatures(after.headers)) == 1

    # And `show --reveal` lists no previous secret any more, plain `show` never a secret
    revealed = _cli(configured, "subscriptions", "show", sub.id, "--account", account, "--reveal", "--json")
    assert json.loads(revealed.stdout)["secret"] == new and json.loads(revealed.stdout)["previous_secrets"] == []
    plain = _cli(configured, "subscriptions", "show", sub.id, "--account", account)
    assert new not in plain.stdout and old not in plain.stdout and new[6:] not in plain.stdout
    # And the rotation is in the audit log with its actor and grace, without either secret
    listed = _cli(configured, "audit", "--account", account, "--json")
    entries = json.loads(listed.stdout)
    assert entries[0]["action"] == "rotate-secret" and entries[0]["actor"] == "ops@rotation-test"
    assert entries[0]["changes"] == {"grace_s": GRACE_S}
    assert old not in listed.stdout and new not in listed.stdout


@pytest.mark.parametrize("grace", ["8d", "-1s", "soon"])
def test_a_grace_period_over_7_days_or_not_a_duration_is_refused_and_changes_nothing(configured, account, grace):
    sub = subscriptions.create(account, "https://127.0.0.1:9/hook", ["*"])
    res = _cli(configured, "subscriptions", "rotate-secret", sub.id, "--account", account, "--grace", grace)
    assert res.returncode == 2
    assert "error" in res.stderr.lower() or "invalid" in res.stderr.lower()
    assert subscriptions.get(account, sub.id).signing_secrets() == sub.signing_secrets()
    assert [e["action"] for e in audit.entries(account)] == ["create"]


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str]) -> dict[str, str]:
    return own_env
