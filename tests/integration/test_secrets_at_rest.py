"""Secrets are encrypted at rest by default (issue 10 item 4), on a real Redis, CLI and worker.

Its own redis-server: the plain-text counts below must see only this module's subscriptions.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.redis_server import RedisServer
from tests.support.worker import Worker, wait_until
from webhooks import secretbox

pytestmark = pytest.mark.integration

NO_KEY = {"WEBHOOKS_ENCRYPTION_KEY": "", "WEBHOOKS_ALLOW_PLAINTEXT_SECRETS": ""}
DEV = {"WEBHOOKS_ENCRYPTION_KEY": "", "WEBHOOKS_ALLOW_PLAINTEXT_SECRETS": "1"}


def _create(env: dict[str, str], account: str) -> dict[str, str]:
    made = run_cli(env, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/hook",
                   "--event", "*", "--json")
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)  # type: ignore[no-any-return]


def test_a_production_shell_without_a_key_refuses_to_store_a_secret(own_env: dict[str, str], account: str) -> None:
    # Given a shell with no WEBHOOKS_ENCRYPTION_KEY and no development flag
    env = {**own_env, **NO_KEY}
    # When an operator creates a subscription
    res = run_cli(env, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/hook", "--event", "*")
    # Then exit 1, one sentence naming the key and the development flag, and nothing stored
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "WEBHOOKS_ENCRYPTION_KEY is not set" in res.stderr and "WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1" in res.stderr
    listed = run_cli(env, "subscriptions", "list", "--account", account, "--json")
    assert json.loads(listed.stdout) == []


def test_plain_secrets_are_flagged_then_encrypted_by_one_idempotent_command_and_the_key_rotates(
    own_env: dict[str, str], own_redis: RedisServer, account: str, tmp_path: Path
) -> None:
    import redis

    # Given secrets stored in plain text under the development flag, one of them rotated
    dev = {**own_env, **DEV}
    first = _create(dev, account)
    second = _create(dev, account)
    rotated = run_cli(dev, "subscriptions", "rotate-secret", first["id"], "--account", account, "--grace", "1h", "--json")
    assert rotated.returncode == 0, rotated.stderr
    r = redis.Redis.from_url(own_redis.url)
    assert r.hvals(f"wh:subs:{account}") and b"whsec_" in b"".join(r.hvals(f"wh:subs:{account}"))
    # Then `webhooks status` warns, `webhooks secrets check` counts them (exit 1) ...
    key = own_env["WEBHOOKS_ENCRYPTION_KEY"]
    status = run_cli({**own_env}, "status", "--account", account)
    assert status.returncode == 0, status.stderr
    assert "3 subscription secret(s) of this account are stored in plain text" in status.stderr
    assert "webhooks secrets encrypt" in status.stderr
    check = run_cli(own_env, "secrets", "check", "--json")
    assert check.returncode == 1 and json.loads(check.stdout) == {"plaintext_secrets": 3}
    # ... and a worker warns at start-up
    worker = Worker(own_env, tmp_path / "worker.log", concurrency=2, beat=False).start()
    try:
        wait_until(lambda: "stored in plain text" in worker.log(), 10, message="the worker's plain-text warning")
        assert "3 subscription secret(s) are stored in plain text" in worker.log()
        assert "whsec_" not in worker.log()
    finally:
        worker.stop()
    # When the operator runs `webhooks secrets encrypt` with the key, twice
    once = run_cli(own_env, "secrets", "encrypt", "--json")
    again = run_cli(own_env, "secrets", "encrypt", "--json")
    # Then all three are encrypted the first time, none the second, and no whsec_ remains in Redis
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout)["encrypted"] == 3 and json.loads(again.stdout)["encrypted"] == 0
    assert b"whsec_" not in b"".join(r.hvals(f"wh:subs:{account}"))
    assert run_cli(own_env, "secrets", "check").returncode == 0
    status = run_cli(own_env, "status", "--account", account)
    assert "plain text" not in status.stderr
    # And the secrets are the same ones (revealed with the key)
    shown = json.loads(run_cli(own_env, "subscriptions", "show", first["id"], "--account", account, "--reveal", "--json").stdout)
    assert shown["previous_secrets"] == [first["secret"]]
    # When the key is rotated: the new key first, the command run, then the old key dropped
    new = secretbox.new_key()
    moved = run_cli({**own_env, "WEBHOOKS_ENCRYPTION_KEY": f"{new},{key}"}, "secrets", "encrypt", "--json")
    assert json.loads(moved.stdout)["encrypted"] == 3
    only_new = {**own_env, "WEBHOOKS_ENCRYPTION_KEY": new}
    shown = json.loads(run_cli(only_new, "subscriptions", "show", second["id"], "--account", account, "--reveal", "--json").stdout)
    # Then every secret still reads, under the new key alone
    assert shown["secret"] == second["secret"]
