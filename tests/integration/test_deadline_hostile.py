"""The total deadline of one delivery attempt holds whatever the server does (issue 10 item 1).

Every server here is a real TLS server on loopback (tests/support/drip.py) that keeps the
connection busy: each byte or line arrives well within any per-read timeout, so only the total
deadline (``WEBHOOKS_TOTAL_TIMEOUT_S``) can end the attempt. Each attempt must end within the
deadline + 1 s, as a ``timeout`` (which the retry policy retries on schedule), and the
connection must be cut (the server sees its client go away).
"""
from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.drip import SHAPES, DripServer
from tests.support.receiver import Receiver, Reply
from tests.support.tls import TestCA, make_ca
from tests.support.worker import Worker, wait_until
from webhooks.errors import TransientDeliveryError
from webhooks.policy import Verdict, classify
from webhooks.settings import Settings
from webhooks.transport import HttpTransport, OutgoingRequest

TOTAL_S = 2.0
CONNECT_S = 1.5


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def transport(ca: TestCA) -> Iterator[HttpTransport]:
    t = HttpTransport(
        Settings(
            ca_bundle=ca.ca_pem_path,
            allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
            total_timeout_s=TOTAL_S,
            connect_timeout_s=CONNECT_S,
        )
    )
    yield t
    t.close()


def _attempt(transport: HttpTransport, url: str) -> tuple[TransientDeliveryError, float]:
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError) as caught:
        transport.send(OutgoingRequest(url=url, body=b'{"type":"ping"}', headers={"webhook-id": "msg_1"}))
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize("shape", SHAPES)
def test_every_dripping_shape_ends_at_the_total_deadline_as_a_timeout(ca: TestCA, transport: HttpTransport, shape: str) -> None:
    # Given a server that keeps the connection busy in this shape, a byte or a line every 0.2 s
    with DripServer(ca, shape, interval_s=0.2) as server:
        # When one attempt is made
        error, elapsed = _attempt(transport, server.url())
        # Then it ends within the total deadline + 1 s, as a timeout, retried on schedule
        assert error.kind == "timeout", f"{shape}: {error.kind}: {error}"
        assert elapsed <= TOTAL_S + 1.0, f"{shape}: attempt took {elapsed:.1f}s"
        # (CPython bounds a whole TLS handshake by the socket timeout, the connect timeout here)
        assert elapsed >= CONNECT_S - 0.2, f"{shape}: ended early ({elapsed:.1f}s): not a deadline"
        assert classify(None, error.kind) is Verdict.RETRY
        assert error.host == "127.0.0.1"
        # And the connection was cut: the server sees its client gone
        wait_until(lambda: server.open_connections == 0, 5, message=f"{shape}: the dripping connection to close")


def test_the_thread_is_free_for_the_next_attempt(ca: TestCA, transport: HttpTransport) -> None:
    # Given a server dripping a Connection: close body (the shape that held workers for ever)
    with DripServer(ca, "body_close", interval_s=0.2) as server:
        # When three attempts run one after the other on this thread
        times = [_attempt(transport, server.url())[1] for _ in range(3)]
    # Then each one ended at the deadline: nothing was left blocking the thread
    assert all(t <= TOTAL_S + 1.0 for t in times), times
    assert server.connections == 3


# --- a real worker shared by dripping endpoints and a healthy one --------------------------
WORKER_TOTAL_S = 3.0
WORKER_THREADS = 8
WORKER_SLOTS = 1  # per endpoint: three dripping endpoints can hold 3 of the 8 threads at most
HEALTHY_EVENTS = 100


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str]) -> dict[str, str]:
    """This module publishes to its own redis-server: the dripping deliveries it leaves
    retrying must not reach other modules' queues."""
    return own_env


@pytest.fixture(scope="module")
def shared_worker(own_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """8 threads, 1 slot per endpoint, a 3 s total deadline, retries every second, and a
    breaker that never opens (the deadline alone must keep the healthy endpoint served);
    on this module's own redis-server."""
    env = {
        **own_env,
        "WEBHOOKS_TOTAL_TIMEOUT_S": str(WORKER_TOTAL_S),
        "WEBHOOKS_CONNECT_TIMEOUT_S": "2",
        "WEBHOOKS_ENDPOINT_CONCURRENCY": str(WORKER_SLOTS),
        "WEBHOOKS_RETRY_SCHEDULE": ",".join(["1"] * 20),
        "WEBHOOKS_RETRY_JITTER": "0",
        "WEBHOOKS_BREAKER_MIN_REQUESTS": "100000",
    }
    w = Worker(env, tmp_path_factory.mktemp("drip-worker") / "worker.log", concurrency=WORKER_THREADS).start()
    yield w
    w.stop()


def _throughput(receiver: Receiver, path: str, account: str, n: int) -> float:
    """Publish ``n`` events to ``account`` and return the deliveries per second ``path`` saw."""
    import webhooks
    from webhooks import events

    already = len(receiver.requests_for(path))
    for _ in range(n):
        webhooks.publish(account, "message.sent", events.sample("message.sent"))
    receiver.wait_for(lambda r: len(r.requests_for(path)) >= already + n, timeout_s=60)
    seen = receiver.requests_for(path)[already:]
    return (n - 1) / max(seen[-1].at - seen[0].at, 1e-3)


def test_dripping_endpoints_do_not_starve_a_healthy_one_on_a_real_worker(
    configured: dict[str, str], shared_worker: Worker, receiver: Receiver, account: str
) -> None:
    import webhooks
    from webhooks import events, records

    # Given a healthy endpoint answering in 20 ms (like a real one: its throughput is bound by
    # the deliveries in flight, which is what dripping endpoints could take away), and its
    # throughput on the worker alone
    receiver.set_default(Reply(status=200, delay_s=0.02))
    webhooks.subscriptions.create(account, receiver.url("/healthy"), ["message.sent"])
    _throughput(receiver, "/healthy", account, 30)  # warm up: connections, caches
    # (best of two runs on each side: the machine may be busy with other work)
    alone = max(_throughput(receiver, "/healthy", account, HEALTHY_EVENTS) for _ in range(2))
    # And three endpoints of other accounts that drip a Connection: close body for ever
    drips = [DripServer(receiver.ca, "body_close", interval_s=0.2).__enter__() for _ in range(3)]
    try:
        drip_deliveries: list[str] = []
        for i, server in enumerate(drips):
            other = f"{account}-drip{i}"
            webhooks.subscriptions.create(other, server.url(), ["message.sent"])
            for _ in range(10):
                drip_deliveries += webhooks.publish(other, "message.sent", events.sample("message.sent")).delivery_ids
        # When they hold their slots of the worker's threads
        wait_until(lambda: sum(s.open_connections for s in drips) >= 3 * WORKER_SLOTS, 10,
                   message="every dripping endpoint to hold its slots")
        # Then the healthy endpoint keeps >= 90 % of its throughput
        shared = max(_throughput(receiver, "/healthy", account, HEALTHY_EVENTS) for _ in range(2))
        assert shared >= 0.9 * alone, f"healthy endpoint: {shared:.0f}/s with drips vs {alone:.0f}/s alone"
        # And every dripping attempt ended at the total deadline as a timeout, and was retried
        wait_until(lambda: all(len(records.attempts(d)) >= 1 for d in drip_deliveries[:: 10]), 3 * WORKER_TOTAL_S,
                   message="the first dripping attempts to end")
        ended = [a for d in drip_deliveries for a in records.attempts(d)]
        assert ended and all(a["error"] == "timeout" for a in ended), {a["error"] for a in ended}
        assert max(a["duration_ms"] for a in ended) <= (WORKER_TOTAL_S + 1) * 1000
        timed_out = [d for d in drip_deliveries if records.attempts(d)]
        assert all(int(records.load(d).get("retries") or 0) >= 1 for d in timed_out), "a timed-out attempt was not retried"
        assert not [d for d in timed_out if records.load(d)["status"] in ("dead", "delivered")]
        print(f"healthy endpoint: {alone:.0f}/s alone, {shared:.0f}/s beside three dripping endpoints")
    finally:
        for server in drips:
            server.stop()


# --- TLS renegotiation (1.2) and key updates (1.3) while dripping ----------------------------
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command (s_server)")
@pytest.mark.parametrize(("version", "command", "proof"), [("tls1_2", b"r\n", "SSL_do_handshake -> 1"), ("tls1_3", b"k\n", "KeyUpdate")])
def test_a_tls_session_that_renegotiates_while_dripping_ends_at_the_deadline(
    ca: TestCA, transport: HttpTransport, tmp_path: Path, version: str, command: bytes, proof: str
) -> None:
    # Given an openssl s_server (Python's ssl cannot start a renegotiation) that answers with
    # headers, then alternates a renegotiation (TLS 1.2) or key update (TLS 1.3) and one body byte
    pem = tmp_path / "server.pem"
    ca.ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "s_server.out"
    with open(out, "wb") as log:
        server = subprocess.Popen(["openssl", "s_server", "-accept", str(port), "-cert", str(pem), f"-{version}", "-msg"],
                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: b"ACCEPT" in out.read_bytes(), 10, message="s_server to listen")
        stop = threading.Event()

        def drip() -> None:
            assert server.stdin is not None
            if not _wait_for(lambda: b"POST /hook" in out.read_bytes(), stop, 10):
                return
            try:
                server.stdin.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
                server.stdin.flush()
                while not stop.wait(0.2):
                    server.stdin.write(command)
                    server.stdin.flush()
                    if stop.wait(0.2):
                        return
                    server.stdin.write(b"x")
                    server.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

        feeder = threading.Thread(target=drip, daemon=True)
        feeder.start()
        # When one attempt is made
        error, elapsed = _attempt(transport, f"https://127.0.0.1:{port}/hook")
        stop.set()
        feeder.join(5)
        # Then the session did renegotiate, and the attempt still ended at the deadline as a timeout
        assert proof in out.read_text(errors="replace"), "the server never renegotiated: this test proves nothing"
        assert error.kind == "timeout", error
        assert TOTAL_S - 0.2 <= elapsed <= TOTAL_S + 1.0
    finally:
        server.kill()
        server.wait(5)


def _wait_for(predicate: Callable[[], bool], stop: threading.Event, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if stop.wait(0.05) or time.monotonic() > deadline:
            return False
    return True
