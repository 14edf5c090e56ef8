"""HttpTransport against the real HTTPS Receiver on loopback.

Every connection in this module goes to 127.0.0.1. Names such as ``receiver.test`` are answered
by an injected resolver (``.test`` never resolves in real DNS, so a transport that resolved
again by itself would fail these tests).
"""
from __future__ import annotations

import http.client
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import urllib3.util.connection

from tests.support.receiver import Receiver, Reply
from tests.support.tls import TestCA, make_ca
from webhooks import transport as transport_module
from webhooks.errors import PermanentDeliveryError, TransientDeliveryError
from webhooks.settings import Settings
from webhooks.transport import USER_AGENT, FakeTransport, HttpTransport, OutgoingRequest
from webhooks.urlguard import check_url

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
TOTAL_S = 3.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def receiver(ca: TestCA) -> Iterator[Receiver]:
    with Receiver(ca) as r:
        yield r


def make_settings(ca: TestCA, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        ca_bundle=ca.ca_pem_path,
        allow_networks=LOOPBACK,
        total_timeout_s=TOTAL_S,
        connect_timeout_s=2.0,
        max_response_bytes=65536,
        log_response_bytes=2048,
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class CountingResolver:
    """Answers from a table (a list of answers per call, the last one repeating)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        sequence = self.answers.get(host)
        if not sequence:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test name")
        n = sum(1 for h in self.calls if h == host)
        return list(sequence[min(n, len(sequence)) - 1])


@pytest.fixture
def transport(ca: TestCA) -> Iterator[HttpTransport]:
    t = HttpTransport(make_settings(ca))
    yield t
    t.close()


def post(t: HttpTransport, url: str, body: bytes = b'{"type":"ping"}', **headers: str):  # type: ignore[no-untyped-def]
    return t.send(OutgoingRequest(url=url, body=body, headers=headers))


@pytest.fixture
def connect_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Records every TCP connect urllib3 makes (and still makes it)."""
    seen: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def spy(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", spy)
    monkeypatch.setattr("urllib3.connection.connection.create_connection", spy)
    return seen


# --- delivery ------------------------------------------------------------------------------
def test_delivers_and_reuses_one_keep_alive_connection(transport: HttpTransport, receiver: Receiver) -> None:
    # Given a receiver answering 200
    # When two requests are sent one after the other
    first = post(transport, receiver.url("/hook"), **{"webhook-id": "msg_1"})
    second = post(transport, receiver.url("/hook"), **{"webhook-id": "msg_2"})
    # Then both are delivered, over one TLS connection
    assert (first.status, first.body, first.truncated) == (200, b"ok", False)
    assert second.status == 200
    assert first.address == "127.0.0.1"
    assert first.headers["content-length"] == "2"
    assert len(receiver.connections) == 1
    seen = receiver.requests_for("/hook")
    assert [r.headers["webhook-id"] for r in seen] == ["msg_1", "msg_2"]
    assert seen[0].client == seen[1].client
    assert seen[0].body == b'{"type":"ping"}'


def test_sends_only_our_headers_and_the_callers(transport: HttpTransport, receiver: Receiver) -> None:
    post(transport, receiver.url("/hook"), **{"webhook-id": "msg_1", "webhook-signature": "v1,abc"})
    headers = receiver.requests_for("/hook")[0].headers
    assert headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("chat-webhooks/")
    assert headers["content-type"] == "application/json"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    assert set(headers) == {
        "host", "user-agent", "content-type", "content-length", "accept-encoding",
        "webhook-id", "webhook-signature",
    }
    assert headers["accept-encoding"] == "identity"  # never a compressed (bomb) response


def test_callers_content_type_is_kept(transport: HttpTransport, receiver: Receiver) -> None:
    post(transport, receiver.url("/hook"), **{"Content-Type": "application/cloudevents+json"})
    assert receiver.requests_for("/hook")[0].headers["content-type"] == "application/cloudevents+json"


@pytest.mark.parametrize("status", [400, 404, 410, 429, 500, 503])
def test_error_statuses_are_responses_not_exceptions(transport: HttpTransport, receiver: Receiver, status: int) -> None:
    receiver.script("/hook", [Reply(status=status, body=b"nope", headers={"Retry-After": "7"})])
    resp = post(transport, receiver.url("/hook"))
    assert (resp.status, resp.body, resp.headers["retry-after"]) == (status, b"nope", "7")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(transport: HttpTransport, receiver: Receiver, status: int) -> None:
    # Given a receiver redirecting to another of its own paths
    receiver.script("/hook", [Reply.redirect(status, receiver.url("/elsewhere"))])
    # When a request is sent
    resp = post(transport, receiver.url("/hook"))
    # Then the 3xx comes back to the caller and nothing follows it
    assert resp.status == status
    assert resp.headers["location"].endswith("/elsewhere")
    assert len(receiver.requests) == 1
    assert receiver.requests_for("/elsewhere") == []


# --- deadline and caps ---------------------------------------------------------------------
@pytest.mark.parametrize("reply", [Reply.drip(bytes_per_s=1, total_bytes=60), Reply.drip_headers(bytes_per_s=1, total_bytes=60)], ids=["body", "headers"])
def test_drip_is_cut_at_the_total_deadline(transport: HttpTransport, receiver: Receiver, reply: Reply) -> None:
    # Given a server that sends one byte a second for a minute
    receiver.script("/slow", [reply])
    # When a request is sent
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError) as caught:
        post(transport, receiver.url("/slow"))
    elapsed = time.monotonic() - started
    # Then the caller is free at the total deadline, with a timeout
    assert caught.value.kind == "timeout"
    assert caught.value.host == "127.0.0.1"
    assert TOTAL_S - 0.5 < elapsed < TOTAL_S + 1.5
    # And the dripping connection is closed (the server notices and stops)
    receiver.wait_for(lambda r: r.open_connections == 0, timeout_s=5)


def test_a_server_that_never_answers_times_out(transport: HttpTransport, receiver: Receiver) -> None:
    receiver.script("/hang", [Reply.hang(max_s=30)])
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError) as caught:
        post(transport, receiver.url("/hang"))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < TOTAL_S + 1.5


def test_huge_body_is_read_only_up_to_the_cap(transport: HttpTransport, receiver: Receiver) -> None:
    # Given a server answering 50 MB
    receiver.script("/big", [Reply.huge(50 * 1024 * 1024)])
    # When a request is sent
    started = time.monotonic()
    resp = post(transport, receiver.url("/big"))
    elapsed = time.monotonic() - started
    # Then only the cap is read, marked truncated, and quickly
    assert resp.status == 200
    assert resp.truncated is True
    assert len(resp.body) == 65536
    assert elapsed < 2.0
    # And that connection is not reused: the next request opens a new one and works
    assert post(transport, receiver.url("/hook")).status == 200
    assert len(receiver.connections) == 2
    receiver.wait_for(lambda r: r.open_connections <= 1, timeout_s=5)


def test_body_exactly_at_the_cap_is_not_truncated(ca: TestCA, receiver: Receiver) -> None:
    t = HttpTransport(make_settings(ca, max_response_bytes=4096))
    receiver.script("/hook", [Reply(body=b"y" * 4096)])
    resp = post(t, receiver.url("/hook"))
    assert (len(resp.body), resp.truncated) == (4096, False)
    t.close()


# --- TLS -----------------------------------------------------------------------------------
def test_certificate_for_another_name_is_refused(ca: TestCA) -> None:
    # Given a receiver whose certificate names only other.test
    with Receiver(ca, hostnames=("other.test",)) as r:
        t = HttpTransport(make_settings(ca))
        # When we deliver to it by IP / by a name it does not hold
        with pytest.raises(TransientDeliveryError) as by_ip:
            post(t, r.url("/hook"))
        t2 = HttpTransport(make_settings(ca), resolver=CountingResolver({"receiver.test": [["127.0.0.1"]]}))
        with pytest.raises(TransientDeliveryError) as by_name:
            post(t2, r.url("/hook", host="receiver.test"))
        # Then TLS refuses and nothing is delivered
        assert by_ip.value.kind == "tls" and by_name.value.kind == "tls"
        assert "receiver.test" == by_name.value.host
        assert r.requests == []


def test_unknown_ca_is_refused(tmp_path: Path, ca: TestCA, receiver: Receiver) -> None:
    stranger = make_ca(tmp_path / "other")
    t = HttpTransport(make_settings(stranger))
    with pytest.raises(TransientDeliveryError) as caught:
        post(t, receiver.url("/hook"))
    assert caught.value.kind == "tls"


def test_name_is_verified_with_sni_while_connecting_to_the_vetted_address(ca: TestCA, receiver: Receiver) -> None:
    # Given a name only our resolver knows, whose certificate is valid
    resolver = CountingResolver({"receiver.test": [["127.0.0.1"]]})
    t = HttpTransport(make_settings(ca), resolver=resolver)
    # When two deliveries go to it
    assert post(t, receiver.url("/hook", host="receiver.test")).status == 200
    assert post(t, receiver.url("/hook", host="receiver.test")).status == 200
    # Then each delivery resolved once (the guard), and the Host header is the name
    assert resolver.calls == ["receiver.test", "receiver.test"]
    assert receiver.requests[0].headers["host"] == f"receiver.test:{receiver.port}"
    t.close()


# --- SSRF at delivery time -----------------------------------------------------------------
def test_only_the_first_vetted_answer_is_connected(ca: TestCA, receiver: Receiver, connect_spy: list[tuple[str, int]]) -> None:
    # Given a name answering two allowed addresses (only the first one listens)
    resolver = CountingResolver({"receiver.test": [["127.0.0.1", "127.0.0.2"]]})
    t = HttpTransport(make_settings(ca), resolver=resolver)
    # When a delivery goes to it
    resp = post(t, receiver.url("/hook", host="receiver.test"))
    # Then it connected once, to the first answer, and resolved nothing more
    assert resp.address == "127.0.0.1"
    assert connect_spy == [("127.0.0.1", receiver.port)]
    assert resolver.calls == ["receiver.test"]
    t.close()


def test_a_name_that_rebinds_to_a_private_address_is_refused_before_connecting(ca: TestCA, receiver: Receiver, connect_spy: list[tuple[str, int]]) -> None:
    # Given a name that was public when the subscription was saved and is private now
    resolver = CountingResolver({"hooks.example.com": [["93.184.216.34"], ["10.0.0.5"]]})
    settings = make_settings(ca)
    assert check_url("https://hooks.example.com/hook", settings=settings, resolver=resolver).addresses == ("93.184.216.34",)
    t = HttpTransport(settings, resolver=resolver)
    # When a delivery is attempted
    with pytest.raises(PermanentDeliveryError) as caught:
        post(t, "https://hooks.example.com/hook?token=s3cret")
    # Then it is refused by the guard, and nothing was connected
    assert caught.value.kind == "url_refused"
    assert "address" in str(caught.value)
    assert caught.value.host == "hooks.example.com"
    assert "s3cret" not in str(caught.value)
    assert connect_spy == []
    assert resolver.calls == ["hooks.example.com", "hooks.example.com"]


def test_refused_url_is_permanent_and_names_the_rule(transport: HttpTransport) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        post(transport, "http://127.0.0.1:1/hook")
    assert caught.value.kind == "url_refused"
    assert "'scheme'" in str(caught.value)


# --- connection failures -------------------------------------------------------------------
def test_connection_refused(transport: HttpTransport) -> None:
    # Given a loopback port nobody listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientDeliveryError) as caught:
        post(transport, f"https://127.0.0.1:{port}/hook", **{"webhook-signature": "v1,secret-sig"})
    assert caught.value.kind == "connect"
    assert caught.value.host == "127.0.0.1"
    assert "secret-sig" not in str(caught.value) and "ping" not in str(caught.value)


def test_server_closing_without_answer_is_a_connect_error(transport: HttpTransport) -> None:
    # Given a plain TCP listener that accepts and closes at once (TLS cannot start)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def accept_and_close() -> None:
            conn, _ = listener.accept()
            conn.close()

        thread = threading.Thread(target=accept_and_close)
        thread.start()
        with pytest.raises(TransientDeliveryError) as caught:
            post(transport, f"https://127.0.0.1:{port}/hook")
        thread.join(5)
    assert caught.value.kind in {"connect", "tls"}


# --- environment and APM -------------------------------------------------------------------
def test_proxy_and_ca_environment_variables_have_no_effect(ca: TestCA, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an environment that would send requests elsewhere or break TLS if it were read
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent")
    monkeypatch.setenv("NO_PROXY", "")
    # When the transport is built and used under it
    t = HttpTransport(make_settings(ca))
    resp = post(t, receiver.url("/hook"))
    # Then the request went straight to the receiver
    assert resp.status == 200
    assert len(receiver.requests_for("/hook")) == 1
    t.close()


@pytest.fixture
def sentry_tracing() -> Iterator[None]:
    sentry_sdk = pytest.importorskip("sentry_sdk")

    class DropEverything(sentry_sdk.transport.Transport):  # type: ignore[misc]
        def capture_envelope(self, envelope: object) -> None:
            return None

    # default trace_propagation_targets: match every URL
    sentry_sdk.init(dsn="https://public@127.0.0.1:9/1", traces_sample_rate=1.0, transport=DropEverything)
    try:
        yield
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)  # back to the no-op client
        assert not sentry_sdk.get_client().is_active()


def test_no_trace_headers_even_with_sentry_tracing_everything(ca: TestCA, receiver: Receiver, sentry_tracing: None) -> None:
    import sentry_sdk

    t = HttpTransport(make_settings(ca))
    with sentry_sdk.start_transaction(name="deliver", op="task"):
        # Given that a plain http.client request in this transaction DOES get trace headers
        conn = http.client.HTTPSConnection("127.0.0.1", receiver.port, context=ca.client_context(), timeout=5)
        conn.request("POST", "/control", body=b"{}")
        conn.getresponse().read()
        conn.close()
        # When a delivery goes through the transport
        post(t, receiver.url("/hook"))
    control = receiver.requests_for("/control")[0].headers
    assert "sentry-trace" in control, "sentry is not patching http.client: this test proves nothing"
    # Then the customer's endpoint saw no trace header
    delivered = receiver.requests_for("/hook")[0].headers
    assert not {"sentry-trace", "baggage", "traceparent"} & set(delivered)
    # And the transport can still find http.client's own putrequest under sentry's wrapper
    found = transport_module._pristine_putrequest()
    assert found is not None and found.__module__ == "http.client"
    t.close()


# --- concurrency ---------------------------------------------------------------------------
def test_64_concurrent_deliveries_keep_their_connections(ca: TestCA, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    # Given a transport with the default pool size and a receiver taking 50 ms per answer
    receiver.set_default(Reply(status=200, delay_s=0.05))
    t = HttpTransport(make_settings(ca))
    barrier = threading.Barrier(64)

    def one(_: int) -> int:
        barrier.wait(5)
        return post(t, receiver.url("/hook")).status

    caplog.set_level(logging.WARNING, logger="urllib3")
    # When two waves of 64 concurrent deliveries run
    with ThreadPoolExecutor(64) as pool:
        first = list(pool.map(one, range(64)))
        opened = len(receiver.connections)
        barrier.reset()
        second = list(pool.map(one, range(64)))
    # Then all succeed, at most 64 connections are opened, the second wave opens (almost) none
    assert first == second == [200] * 64
    assert opened <= 64
    assert len(receiver.connections) - opened <= 2
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    t.close()


# --- the stub twin -------------------------------------------------------------------------
def test_fake_transport_records_and_replays_its_script() -> None:
    fake = FakeTransport([FakeTransport.response(500), TransientDeliveryError("boom", kind="timeout", host="h")])
    fake.script(FakeTransport.response(410), url="https://gone.example/")
    req = OutgoingRequest(url="https://a.example/", body=b"{}", headers={"webhook-id": "m"})
    assert fake.send(req).status == 500
    with pytest.raises(TransientDeliveryError):
        fake.send(req)
    assert fake.send(OutgoingRequest(url="https://gone.example/", body=b"{}")).status == 410
    assert fake.send(req).status == 200
    assert [r.url for r in fake.requests] == ["https://a.example/"] * 2 + ["https://gone.example/", "https://a.example/"]


# --- explicit egress proxy -----------------------------------------------------------------
class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback that records the targets it was asked for."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            target = head.split(b" ")[1].decode()
            self.targets.append(target)
            host, _, port = target.rpartition(":")
            if host not in ("127.0.0.1", "[::1]"):  # this proxy never leaves loopback
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
                pump.start()
                self._pump(client, upstream)
                pump.join(5)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()


def test_egress_proxy_is_asked_for_the_vetted_address(ca: TestCA, receiver: Receiver) -> None:
    # Given an explicit egress proxy and a name only our resolver knows
    proxy = ConnectProxy()
    try:
        resolver = CountingResolver({"receiver.test": [["127.0.0.1"]]})
        t = HttpTransport(make_settings(ca, egress_proxy=f"http://127.0.0.1:{proxy.port}"), resolver=resolver)
        # When two deliveries go through it
        first = post(t, receiver.url("/hook", host="receiver.test"))
        second = post(t, receiver.url("/hook", host="receiver.test"))
        # Then the proxy tunnelled once to the vetted address (it resolved nothing itself),
        # TLS was verified end to end against the name, and the tunnel was kept alive
        assert (first.status, second.status) == (200, 200)
        assert proxy.targets == [f"127.0.0.1:{receiver.port}"]
        assert receiver.requests[0].headers["host"] == f"receiver.test:{receiver.port}"
        t.close()
    finally:
        proxy.close()


def test_egress_proxy_path_still_enforces_the_total_deadline(ca: TestCA, receiver: Receiver) -> None:
    proxy = ConnectProxy()
    try:
        t = HttpTransport(make_settings(ca, egress_proxy=f"http://127.0.0.1:{proxy.port}"))
        receiver.script("/slow", [Reply.drip(bytes_per_s=1, total_bytes=60)])
        started = time.monotonic()
        with pytest.raises(TransientDeliveryError) as caught:
            post(t, receiver.url("/slow"))
        assert caught.value.kind == "timeout"
        assert time.monotonic() - started < TOTAL_S + 1.5
        t.close()
    finally:
        proxy.close()


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_delivers_to_an_ipv6_literal(ca: TestCA) -> None:
    # Given a receiver on [::1] and ::1 allowed
    with Receiver(ca, bind="::1") as r:
        t = HttpTransport(make_settings(ca, allow_networks=(ipaddress.ip_network("::1/128"),)))
        # When a delivery goes to the bracketed literal
        resp = post(t, r.url("/hook", host="::1"))
        # Then it arrives, with a bracketed Host header
        assert (resp.status, resp.address) == (200, "::1")
        assert r.requests[0].headers["host"] == f"[::1]:{r.port}"
        t.close()


def test_public_names_are_exported() -> None:
    assert all(hasattr(transport_module, name) for name in transport_module.__all__)
    assert {"HttpTransport", "FakeTransport", "OutgoingRequest", "IncomingResponse", "Transport"} <= set(transport_module.__all__)
