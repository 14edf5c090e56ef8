"""Prometheus metrics, scraped from real processes: a worker serving WEBHOOKS_METRICS_PORT after
real deliveries to the real HTTPS receiver, and the ``webhooks metrics`` exporter over a Redis
of this module's own (so every gauge has a known, exact value)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import webhooks
from webhooks import events
from tests.support.receiver import Reply
from tests.support.worker import ROOT, Worker, wait_until

pytestmark = pytest.mark.integration

N = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics (no proxies) -> {(sample name, sorted labels): value}."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _delivery_of(message: bytes) -> str:
    """The delivery id a queued task message carries (body base64 or plain JSON), or the task's
    name in brackets for another task's message."""
    import base64
    import json

    m = json.loads(message)
    task = m["headers"].get("task")
    if task != "webhooks.deliver":  # beat's periodic tasks (move_due, reconcile) share the default queue
        return f"({task})"
    body = m["body"]
    try:
        return str(json.loads(body)[0][0])
    except ValueError:
        return str(json.loads(base64.b64decode(body))[0][0])


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str]) -> dict[str, str]:
    return own_env


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def metrics_worker(own_env: dict[str, str], metrics_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """The only worker on this module's Redis, serving /metrics on a free loopback port."""
    env = {**own_env, "WEBHOOKS_METRICS_PORT": str(metrics_port)}
    w = Worker(env, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield w
    w.stop()


def test_worker_metrics_count_real_deliveries_and_the_exporter_reads_the_redis_state(
        configured, metrics_worker, metrics_port, receiver, own_env, tmp_path):
    from webhooks.breaker import CircuitBreaker
    from webhooks.connection import get_redis
    from webhooks.delivery import breaker_config
    from webhooks.settings import get_settings

    # Given a worker serving its metrics, with nothing counted yet
    before = scrape(metrics_port)
    assert value(before, "webhooks_attempts_total", result="2xx") == 0
    assert value(before, "webhooks_deliveries_ended_total", outcome="delivered") == 0
    # ... and five endpoints, each in its own account: one answering 200, one 500 then 200 (retried
    # after 1 s), one 410 Gone (dead at once), one 500 whose retry is an hour away (parked), one
    # never published to
    ok = webhooks.subscriptions.create("m-ok", receiver.url("/ok"), ["conversation.ended"])
    webhooks.subscriptions.create("m-flaky", receiver.url("/flaky"), ["conversation.ended"], retry_schedule="1s")
    receiver.script("/flaky", [Reply(status=500, body=b"fail"), Reply(status=200)])
    webhooks.subscriptions.create("m-gone", receiver.url("/gone"), ["conversation.ended"])
    receiver.script("/gone", [Reply(status=410, body=b"gone")])
    webhooks.subscriptions.create("m-park", receiver.url("/park"), ["conversation.ended"], retry_schedule="1h")
    receiver.script("/park", [Reply(status=500, body=b"fail")])
    quiet = webhooks.subscriptions.create("m-quiet", receiver.url("/quiet"), ["conversation.started"])

    # When N events go to the healthy endpoint and one to each of the others
    published_at = time.time()
    for _ in range(N):
        webhooks.publish("m-ok", "conversation.ended", events.sample("conversation.ended"))
    for account in ("m-flaky", "m-gone", "m-park"):
        webhooks.publish(account, "conversation.ended", events.sample("conversation.ended"))
    receiver.wait_for(lambda r: len(r.requests_for("/ok")) == N and len(r.requests_for("/flaky")) == 2
                      and len(r.requests_for("/gone")) == 1 and len(r.requests_for("/park")) == 1, timeout_s=30)

    def settled() -> bool:
        s = scrape(metrics_port)
        return (value(s, "webhooks_deliveries_ended_total", outcome="delivered") == N + 1
                and value(s, "webhooks_deliveries_ended_total", outcome="dead") == 1
                and value(s, "webhooks_retries_scheduled_total", tier="parked") == 1)

    wait_until(settled, 30, message="the worker's metrics to count every ended delivery")
    elapsed = time.time() - published_at
    s = scrape(metrics_port)
    # Then the attempts are counted by result class: N+1 answered 2xx, one 5xx then 2xx, one 410, one 5xx
    assert value(s, "webhooks_attempts_total", result="2xx") == N + 1
    assert value(s, "webhooks_attempts_total", result="5xx") == 2
    assert value(s, "webhooks_attempts_total", result="4xx") == 1
    for other in ("3xx", "timeout", "connect", "tls", "refused", "other"):
        assert value(s, "webhooks_attempts_total", result=other) == 0, other
    # ... every attempt's duration is in the histogram, all well under the 5 s deadline
    assert value(s, "webhooks_attempt_duration_seconds_count") == N + 4
    assert value(s, "webhooks_attempt_duration_seconds_bucket", le="5.0") == N + 4
    assert 0 < value(s, "webhooks_attempt_duration_seconds_sum") < 5 * (N + 4)
    # ... deliveries ended: N+1 delivered (the flaky one on its retry), one dead (410), none discarded
    assert value(s, "webhooks_deliveries_ended_total", outcome="delivered") == N + 1
    assert value(s, "webhooks_deliveries_ended_total", outcome="dead") == 1
    assert value(s, "webhooks_deliveries_ended_total", outcome="discarded") == 0
    # ... publish-to-delivered latency: N+1 observations, the retried one took at least its 1 s delay
    assert value(s, "webhooks_delivery_latency_seconds_count") == N + 1
    assert value(s, "webhooks_delivery_latency_seconds_bucket", le="0.5") <= N
    assert value(s, "webhooks_delivery_latency_seconds_bucket", le="60.0") == N + 1
    assert 1.0 <= value(s, "webhooks_delivery_latency_seconds_sum") <= elapsed * (N + 1)
    # ... one retry held by Celery (1 s), one parked in Redis (1 h)
    assert value(s, "webhooks_retries_scheduled_total", tier="countdown") == 1
    assert value(s, "webhooks_retries_scheduled_total", tier="parked") == 1
    # ... and no label names a subscription or an account (cardinality)
    assert not any(dict(labels).keys() & {"account", "subscription", "sub", "endpoint"} for _, labels in s)
    assert ok.id not in str(s) and "m-ok" not in str(s)

    # Given one endpoint's breaker opened (ten failures), the worker stopped, and two more
    # events published (so they wait in the queue)
    breaker = CircuitBreaker(get_redis(), breaker_config(get_settings()))
    for _ in range(10):
        breaker.record(quiet.id, False)
    assert breaker.state(quiet.id)["state"] == "open"
    metrics_worker.stop()
    waiting = {webhooks.publish("m-ok", "conversation.ended", events.sample("conversation.ended")).delivery_ids[0]
               for _ in range(2)}

    # When the exporter runs and is scraped
    port = _free_port()
    exporter = subprocess.Popen([sys.executable, "-m", "webhooks", "metrics", "--port", str(port)], cwd=ROOT,
                                env={**os.environ, **own_env, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        def answering() -> bool:
            try:
                scrape(port)
                return True
            except OSError:
                return exporter.poll() is not None
        wait_until(answering, 20, message="the exporter to answer")
        assert exporter.poll() is None, exporter.stderr.read().decode()  # type: ignore[union-attr]
        g = scrape(port)
    finally:
        exporter.send_signal(signal.SIGTERM)
        rc = exporter.wait(10)
    # Then it reports the state in Redis exactly
    assert value(g, "webhooks_redis_up") == 1
    # (the queue's true length, with the worker stopped: the two just published, plus any message
    # of beat's that was waiting there (its ticks go to the default queue); named if there is one)
    queued = [_delivery_of(m) for m in get_redis().lrange("deliveries", 0, -1)]
    assert waiting <= set(queued), queued
    assert value(g, "webhooks_queue_messages", queue="deliveries") == len(queued) >= 2
    assert value(g, "webhooks_queue_messages", queue="retries") == 0
    assert value(g, "webhooks_parked_retries") == 1
    assert value(g, "webhooks_inflight_deliveries") == 3  # the parked one and the two queued
    assert value(g, "webhooks_dead_letters") == 1
    assert value(g, "webhooks_breakers_open", state="open") == 1
    assert value(g, "webhooks_breakers_open", state="half_open") == 0
    assert value(g, "webhooks_subscriptions", state="enabled") == 4
    assert value(g, "webhooks_subscriptions", state="disabled") == 1  # 410 Gone disabled it
    # ... and SIGTERM stops it cleanly
    assert rc == 0


def test_exporter_reports_redis_down_quickly_instead_of_hanging(own_env):
    # Given a Redis URL where nothing listens
    port = _free_port()
    env = {**os.environ, **own_env, "PYTHONPATH": str(ROOT), "WEBHOOKS_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    # When one scrape is taken
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "webhooks", "metrics", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    # Then it says Redis is down, within the state client's timeouts, and exits 0
    assert done.returncode == 0, done.stderr
    assert "webhooks_redis_up 0.0" in done.stdout
    assert "webhooks_queue_messages" not in done.stdout
    assert time.monotonic() - started < 15


def test_a_prefork_worker_without_a_multiprocess_dir_refuses_to_serve(own_env, tmp_path):
    # Given a prefork worker asked to serve metrics, without PROMETHEUS_MULTIPROC_DIR
    port = _free_port()
    env = {k: v for k, v in {**own_env, "WEBHOOKS_METRICS_PORT": str(port)}.items()}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    w = Worker(env, tmp_path / "worker.log", pool="prefork", concurrency=2, beat=False)
    w.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with w:
        # Then it says why and serves nothing (rather than one child's counts as the worker's)
        wait_until(lambda: "PROMETHEUS_MULTIPROC_DIR" in w.log(), 10, message="the refusal in the log")
        with pytest.raises(OSError):
            scrape(port)


def test_a_prefork_worker_with_a_multiprocess_dir_serves_the_sum_of_its_children(configured, own_env, receiver, tmp_path,
                                                                                  monkeypatch):
    from tests.support.redis_server import RedisServer
    from webhooks.settings import reload_settings

    # Given a prefork worker with two children, PROMETHEUS_MULTIPROC_DIR set to an empty directory,
    # on a Redis of this test's own (the module's holds messages the first test left queued)
    server = RedisServer(tmp_path / "redis").start()
    monkeypatch.setenv("WEBHOOKS_REDIS_URL", server.url)
    reload_settings()
    port = _free_port()
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    env = {**own_env, "WEBHOOKS_REDIS_URL": server.url, "WEBHOOKS_METRICS_PORT": str(port),
           "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    try:
        webhooks.subscriptions.create("m-prefork", receiver.url("/prefork"), ["conversation.ended"])
        receiver.set_default(Reply(status=200, delay_s=0.2))  # slow enough that both children get work
        with Worker(env, tmp_path / "worker.log", pool="prefork", concurrency=2, beat=False) as w:
            # When eight events are delivered
            for _ in range(8):
                webhooks.publish("m-prefork", "conversation.ended", events.sample("conversation.ended"))
            receiver.wait_for(lambda r: len(r.requests_for("/prefork")) == 8, timeout_s=30)
            wait_until(lambda: value(scrape(port), "webhooks_deliveries_ended_total", outcome="delivered") == 8, 20,
                       message="the parent to serve all eight deliveries")
            # Then the parent's /metrics is the sum over both children, who both wrote values
            s = scrape(port)
            assert value(s, "webhooks_attempts_total", result="2xx") == 8
            assert value(s, "webhooks_attempt_duration_seconds_count") == 8
            children = {p.stem.rsplit("_", 1)[-1] for p in mp_dir.glob("counter_*.db")} - {str(w.proc.pid)}
            assert len(children) == 2, children
    finally:
        server.stop()
