"""Flower 2.2 on Celery 5.7, with config/flowerconfig.py: a smoke test on real processes.

Flower's own CI stops at Celery 5.6; this is our proof that it works with 5.7, that our
configuration requires auth and binds loopback, and that it shows delivery ids, never payloads
or secrets. It also pins down, as facts, what Flower leaves open without auth: ``/healthcheck``
and ``/metrics`` (documented in config/flowerconfig.py).
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

import webhooks
from webhooks import events
from tests.support.worker import ROOT, Worker, wait_until

pytestmark = pytest.mark.integration

USER, PASSWORD = "ops", "flower-smoke-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, auth: bool = False) -> tuple[int, str]:
    """GET ``url`` (no proxies); (status, body text). HTTP errors are returned, not raised."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def _post(url: str) -> int:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(url, data=b"{}", method="POST",
                                     headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (Linux /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        hex_ip, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(hex_ip)[::-1]))
    return found


@pytest.fixture
def events_worker(stack_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    """A worker that sends task events (-E), as Flower needs."""
    w = Worker(stack_env, tmp_path / "worker.log", beat=False, extra_args=("-E",)).start(timeout_s=60)
    yield w
    w.stop()


@pytest.fixture
def flower(stack_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Flower with config/flowerconfig.py on a free loopback port; yields its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env.update(stack_env, PYTHONPATH=str(ROOT), FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}",
               FLOWER_COOKIE_SECRET="smoke-test-cookie-secret", FLOWER_PORT=str(port))
    log_path = tmp_path / "flower.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", "flower", "--conf=config/flowerconfig.py"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{base}/healthcheck")[0] == 200 or proc.poll() is not None, 60,
                   message="Flower to answer /healthcheck")
        assert proc.poll() is None, log_path.read_text()
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def test_flower_needs_auth_binds_loopback_and_shows_only_delivery_ids(configured, events_worker, flower, receiver, account):
    base = flower
    worker_name = events_worker.args[events_worker.args.index("-n") + 1].split("@")[0]
    # Given Flower has seen our worker (its event receiver is consuming: heartbeats reach /metrics)
    wait_until(lambda: f'flower_worker_online{{worker="{worker_name}@' in _get(f"{base}/metrics")[1], 60,
               message="Flower to see the worker")
    sub = webhooks.subscriptions.create(account, receiver.url("/flower"), ["conversation.ended"])
    secret = sub.signing_secrets()[0]
    # When one event is published and delivered
    published = webhooks.publish(account, "conversation.ended", events.sample("conversation.ended"))
    delivery_id = published.delivery_ids[0]
    receiver.wait_for(lambda r: len(r.requests_for("/flower")) == 1, timeout_s=30)

    def our_tasks() -> list[dict[str, object]]:
        status, body = _get(f"{base}/api/tasks?limit=1000", auth=True)
        if status != 200:
            return []
        return [t for t in json.loads(body).values() if delivery_id in str(t.get("args"))]

    wait_until(lambda: any(t.get("state") == "SUCCESS" for t in our_tasks()), 30, message="Flower to list the delivery")
    # Then without credentials the UI and the API answer 401
    assert _get(f"{base}/")[0] == 401
    assert _get(f"{base}/api/tasks")[0] == 401
    assert _get(f"{base}/", auth=True)[0] == 200
    # ... the authenticated task list shows webhooks.deliver with the delivery id as its only argument
    task = next(t for t in our_tasks() if t.get("state") == "SUCCESS")
    assert task["name"] == "webhooks.deliver"
    assert task["args"] == repr([delivery_id])
    assert task["kwargs"] == "{}"
    # ... and nothing of the payload or the secret anywhere in what Flower holds about it
    status, full = _get(f"{base}/api/task/info/{task['uuid']}", auth=True)
    assert status == 200
    for leak in (secret, secret.removeprefix("whsec_"), "jordan.lee@example.org", "charged twice", published.id):
        assert leak not in full
        assert leak not in _get(f"{base}/api/tasks?limit=1000", auth=True)[1]
    # ... it is read-only: no starting tasks or revoking from the web
    assert _post(f"{base}/api/task/async-apply/webhooks.deliver") == 403
    assert _post(f"{base}/api/task/revoke/{task['uuid']}") == 403
    # ... it listens on loopback only
    assert _listening_addresses(int(base.rsplit(":", 1)[1])) == {"127.0.0.1"}
    # ... and, by Flower's design, /healthcheck and /metrics stay open without credentials:
    # "OK", and Prometheus text naming workers and task names, never arguments
    assert _get(f"{base}/healthcheck") == (200, "OK")
    status, metrics = _get(f"{base}/metrics")
    assert status == 200
    assert 'task="webhooks.deliver"' in metrics
    assert delivery_id not in metrics


def test_flower_refuses_to_start_without_basic_auth(stack_env, tmp_path):
    # Given no FLOWER_BASIC_AUTH in the environment
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env.update(stack_env, PYTHONPATH=str(ROOT), FLOWER_COOKIE_SECRET="x", FLOWER_PORT=str(_free_port()))
    # When Flower starts with our config
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "flower", "--conf=config/flowerconfig.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    # Then it exits at once, saying what to set
    assert done.returncode != 0
    assert "set FLOWER_BASIC_AUTH" in done.stdout + done.stderr
