"""The bare command is the production command: ``celery -A workers worker`` with no flags
consumes both queues with a threads pool of WEBHOOKS_WORKER_CONCURRENCY, and flags still
override. Real worker processes on a redis-server of this module's own (a bare worker is named
celery@host: it must share its Redis with nobody)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import webhooks
from webhooks import events, records
from tests.support.receiver import Reply
from tests.support.redis_server import RedisServer
from tests.support.worker import ROOT, _die_with_parent, wait_until

pytestmark = pytest.mark.integration


class BareWorker:
    """``celery -A workers worker`` plus exactly ``flags``, ready once its liveness file is fresh."""

    def __init__(self, env: dict[str, str], log: Path, flags: tuple[str, ...] = ()) -> None:
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.args = [sys.executable, "-m", "celery", "-A", "workers", "worker", *flags]
        self.log = log

    def __enter__(self) -> "BareWorker":
        self._out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        health = Path(self.env["WEBHOOKS_HEALTH_DIR"])
        wait_until(lambda: any(health.glob("chat-webhooks-worker-*.alive")) or self.proc.poll() is not None, 60,
                   0.2, message="the bare worker's first heartbeat")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()
        for f in Path(self.env["WEBHOOKS_HEALTH_DIR"]).glob("chat-webhooks-worker-*.alive"):
            f.unlink()

    def inspect(self, what: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "inspect", what, "--json", "-t", "5"],
                             cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        (answer,) = json.loads(out.stdout).values()
        return answer  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def bare_env(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    health = tmp_path_factory.mktemp("health")
    yield {**stack_env, "WEBHOOKS_REDIS_URL": server.url, "WEBHOOKS_HEALTH_DIR": str(health)}
    server.stop()


@pytest.fixture(scope="module")
def producer_env(bare_env: dict[str, str]) -> dict[str, str]:
    return bare_env


def test_the_bare_worker_command_consumes_both_queues_with_a_threads_pool_of_32(
    bare_env: dict[str, str], configured: dict[str, str], receiver: Any, account: str, tmp_path: Path
) -> None:
    # Given an endpoint that fails the first attempt, then succeeds, and a 0.5 s retry step
    webhooks.subscriptions.create(account, receiver.url("/bare"), ["message.sent"], retry_schedule="0.5")
    receiver.script("/bare", [Reply(status=500)])
    # When `celery -A workers worker` starts with no flags at all
    with BareWorker(bare_env, tmp_path / "bare.log") as w:
        # Then it runs the threads pool with 32 threads, and consumes deliveries and retries
        pool = w.inspect("stats")["pool"]
        assert pool["implementation"] == "celery.concurrency.thread:TaskPool"
        assert pool["max-concurrency"] == 32
        assert {q["name"] for q in w.inspect("active_queues")} == {"deliveries", "retries"}
        # ... and a delivery goes out from the deliveries queue and its retry from the retries queue
        did = webhooks.publish(account, "message.sent", events.sample("message.sent")).delivery_ids[0]
        wait_until(lambda: len(receiver.requests_for("/bare")) >= 2, 30, message="the retry")
        wait_until(lambda: (records.load(did) or {}).get("status") == "delivered", 10, message="the delivery to be delivered")
    ids = {r.headers["webhook-id"] for r in receiver.requests_for("/bare")}
    assert len(ids) == 1


def test_flags_still_override_the_configured_shape(bare_env: dict[str, str], tmp_path: Path) -> None:
    # When the worker is started with -c 4 -Q retries
    with BareWorker(bare_env, tmp_path / "flags.log", ("-c", "4", "-Q", "retries")) as w:
        # Then it uses 4 threads and consumes the retries queue only
        pool = w.inspect("stats")["pool"]
        assert pool["implementation"] == "celery.concurrency.thread:TaskPool" and pool["max-concurrency"] == 4
        assert [q["name"] for q in w.inspect("active_queues")] == ["retries"]
    # When it is started with -P processes (prefork's other name), Then it runs prefork
    with BareWorker(bare_env, tmp_path / "prefork.log", ("-P", "processes", "-c", "2")) as w:
        assert w.inspect("stats")["pool"]["implementation"] == "celery.concurrency.prefork:TaskPool"
