"""``webhooks listen`` and ``webhooks trigger`` as a developer runs them: real processes (a worker,
the listener, the trigger) on a Redis of this module's own, and a worker with NO loopback or http
allowance in its settings: the listener's subscription carries its own narrow one."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.cli import run_cli
from tests.support.worker import ROOT, Worker, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strict_env(own_env: dict[str, str]) -> dict[str, str]:
    """The stack on this module's Redis, with the guard's global allowances switched off."""
    env = {k: v for k, v in own_env.items() if k not in ("WEBHOOKS_ALLOW_NETWORKS", "WEBHOOKS_ALLOW_HTTP")}
    env.update(WEBHOOKS_RETRY_SCHEDULE="1s,1s", WEBHOOKS_RETRY_JITTER="0")
    return env


@pytest.fixture(scope="module")
def strict_worker(strict_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    clean = {k: v for k, v in os.environ.items() if k not in ("WEBHOOKS_ALLOW_NETWORKS", "WEBHOOKS_ALLOW_HTTP")}
    w = Worker(strict_env, tmp_path_factory.mktemp("worker") / "worker.log")
    w.env = {**clean, **strict_env, "PYTHONPATH": str(ROOT)}
    w.start()
    yield w
    w.stop()


class Listen:
    """``webhooks listen`` in a subprocess, its stdout and stderr in files."""

    def __init__(self, env: dict[str, str], tmp: Path, *args: str) -> None:
        self.out, self.err = tmp / "listen.out", tmp / "listen.err"
        clean = {k: v for k, v in os.environ.items() if k not in ("WEBHOOKS_ALLOW_NETWORKS", "WEBHOOKS_ALLOW_HTTP")}
        self.proc = subprocess.Popen([sys.executable, "-m", "webhooks", "listen", *args], cwd=ROOT,
                                     env={**clean, **env, "PYTHONPATH": str(ROOT)},
                                     stdout=open(self.out, "wb"), stderr=open(self.err, "wb"), start_new_session=True)
        wait_until(lambda: "Ctrl-C to stop" in self.stderr() or self.proc.poll() is not None, 30,
                   message="webhooks listen to be ready")
        assert self.proc.poll() is None, self.stderr()
        self.sub_id = self.stderr().split("(subscription ")[1].split(",")[0]

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def listen_factory(strict_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    started: list[Listen] = []

    def start(*args: str) -> Listen:
        d = tmp_path / f"l{len(started)}"
        d.mkdir()
        started.append(Listen(strict_env, d, *args))
        return started[-1]

    yield start
    for listener in started:
        listener.stop()


def _subs(env: dict[str, str], account: str) -> list[dict[str, Any]]:
    done = run_cli(env, "subscriptions", "list", "--account", account, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_listen_receives_a_triggered_event_verified_and_deletes_its_subscription_on_sigterm(
        strict_env, strict_worker, listen_factory, account):
    # Given `webhooks listen` for the account's conversation events (the worker's settings allow
    # neither loopback nor http)
    listen = listen_factory("--account", account, "--event", "conversation.*", "--print-body")
    assert [s["id"] for s in _subs(strict_env, account)] == [listen.sub_id]
    # When `webhooks trigger` publishes the sample conversation.ended
    done = run_cli(strict_env, "trigger", "conversation.ended", "--account", account)
    # Then it prints the event and the one delivery id it enqueued
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[0].startswith("published evt_") and "1 deliveries" in lines[0]
    delivery_id = lines[1].strip()
    assert delivery_id.startswith("msg_")
    # ... and listen prints the delivery: type, webhook-id, attempt, signature verified, latency, body
    wait_until(lambda: delivery_id in listen.stdout(), 30, message="listen to print the delivery")
    line = next(l for l in listen.stdout().splitlines() if delivery_id in l)
    assert "conversation.ended" in line and "attempt 1" in line and "signature verified" in line
    assert "latency " in line and " ms" in line and "→ 200" in line
    assert '"conversation_id": "conv_8d2k1"' in listen.stdout()  # --print-body, pretty-printed
    # When listen gets SIGTERM
    assert listen.stop(signal.SIGTERM) == 0
    # Then its subscription is gone from Redis
    assert _subs(strict_env, account) == []
    assert "Deleted subscription" in listen.stderr()


def test_listen_status_500_rehearses_retries_and_ctrl_c_cleans_up(strict_env, strict_worker, listen_factory, account):
    # Given listen answering 500 (the schedule here retries after 1 s, twice)
    listen = listen_factory("--account", account, "--event", "conversation.started", "--status", "500")
    done = run_cli(strict_env, "trigger", "conversation.started", "--account", account, "--json")
    assert done.returncode == 0, done.stderr
    delivery_id = json.loads(done.stdout)["delivery_ids"][0]
    # Then each attempt is printed, with the same webhook-id, numbered, answered 500
    wait_until(lambda: "attempt 3" in listen.stdout(), 30, message="three attempts")
    attempts = [l for l in listen.stdout().splitlines() if delivery_id in l]
    assert [("attempt 1" in attempts[0]), ("attempt 2" in attempts[1]), ("attempt 3" in attempts[2])] == [True] * 3
    assert all("signature verified" in l and "→ 500" in l for l in attempts)
    # ... and Ctrl-C (SIGINT) deletes the subscription too
    assert listen.stop(signal.SIGINT) == 0
    assert _subs(strict_env, account) == []


def test_listen_forward_to_relays_to_the_local_app(strict_env, strict_worker, listen_factory, account):
    # Given a local app that answers 202, and listen forwarding to it
    got: list[tuple[dict[str, str], bytes]] = []

    class App(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            return

        def do_POST(self) -> None:
            got.append(({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    app = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        listen = listen_factory("--account", account, "--event", "rating.submitted", "--json",
                                "--forward-to", f"http://127.0.0.1:{app.server_address[1]}/webhooks")
        secret = listen.stderr().split("Signing secret: ")[1].split()[0]
        done = run_cli(strict_env, "trigger", "rating.submitted", "--account", account)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: bool(listen.stdout().strip()), 30, message="the forwarded delivery")
        # Then the app got the body and the webhook-* headers, verifiable with the printed secret
        import webhooks

        headers, body = got[0]
        assert webhooks.verify(secret, body, headers)["type"] == "rating.submitted"
        # ... and listen answered the worker with the app's status (a JSON line per delivery)
        line = json.loads(listen.stdout().splitlines()[0])
        assert line["status"] == 202 and line["signature"] == "verified" and line["type"] == "rating.submitted"
    finally:
        app.shutdown()


def test_trigger_refuses_bad_data_with_one_sentence_and_exit_2(strict_env, tmp_path, account):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = run_cli(strict_env, "trigger", "conversation.ended", "--account", account, "--data", str(bad))
    assert done.returncode == 2
    assert "must hold a JSON object" in done.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"conversation_id": "c1"}))
    done = run_cli(strict_env, "trigger", "custom.thing", "--account", account, "--data", str(good), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["delivery_ids"] == []  # nobody subscribed


def test_listen_https_with_a_throwaway_ca_the_worker_is_told_to_trust(stack_env, account, tmp_path):
    from tests.support.redis_server import RedisServer

    # Given a Redis of this test's own, and `webhooks listen --https` writing its CA to a file
    server = RedisServer(tmp_path / "redis").start()
    env = {k: v for k, v in stack_env.items() if k not in ("WEBHOOKS_ALLOW_NETWORKS", "WEBHOOKS_ALLOW_HTTP")}
    env["WEBHOOKS_REDIS_URL"] = server.url
    ca_file = tmp_path / "listen-ca.pem"
    listen = Listen(env, tmp_path, "--account", account, "--event", "conversation.ended", "--https", "--ca-file", str(ca_file))
    worker = None
    try:
        assert "https://127.0.0.1:" in listen.stderr() and str(ca_file) in listen.stderr()
        # When a worker trusting that CA (WEBHOOKS_CA_BUNDLE, as listen says) delivers a triggered event
        clean = {k: v for k, v in os.environ.items() if k not in ("WEBHOOKS_ALLOW_NETWORKS", "WEBHOOKS_ALLOW_HTTP")}
        worker = Worker({**env, "WEBHOOKS_CA_BUNDLE": str(ca_file)}, tmp_path / "worker.log", beat=False)
        worker.env = {**clean, **env, "WEBHOOKS_CA_BUNDLE": str(ca_file), "PYTHONPATH": str(ROOT)}
        worker.start()
        done = run_cli(env, "trigger", "conversation.ended", "--account", account, "--json")
        assert done.returncode == 0, done.stderr
        delivery_id = json.loads(done.stdout)["delivery_ids"][0]
        # Then it arrives over verified TLS, signature verified
        wait_until(lambda: delivery_id in listen.stdout(), 30, message="the HTTPS delivery")
        assert "signature verified" in listen.stdout() and "attempt 1" in listen.stdout()
    finally:
        assert listen.stop() == 0
        if worker is not None:
            worker.stop()
        server.stop()
