"""The total deadline of one delivery attempt holds whatever the server does (issue 10 item 1).

Every server here is a real TLS server on loopback (tests/support/drip.py) that keeps the
connection busy: each byte or line arrives well within any per-read timeout, so only the total
deadline (``WEBHOOKS_TOTAL_TIMEOUT_S``) can end the attempt. Each attempt must end within the
deadline + 1 s, as a ``timeout`` (which the retry policy retries on schedule), and the
connection must be cut (the server sees its client go away).
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator

import pytest

from tests.support.drip import SHAPES, DripServer
from tests.support.tls import TestCA, make_ca
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
        deadline = time.monotonic() + 5
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_connections == 0, f"{shape}: the dripping connection is still open"


def test_the_thread_is_free_for_the_next_attempt(ca: TestCA, transport: HttpTransport) -> None:
    # Given a server dripping a Connection: close body (the shape that held workers for ever)
    with DripServer(ca, "body_close", interval_s=0.2) as server:
        # When three attempts run one after the other on this thread
        times = [_attempt(transport, server.url())[1] for _ in range(3)]
    # Then each one ended at the deadline: nothing was left blocking the thread
    assert all(t <= TOTAL_S + 1.0 for t in times), times
    assert server.connections == 3
