"""Sentry: what leaves the process holds no secret, email address, frame locals or trace headers."""
from __future__ import annotations

import http.client
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Iterator

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from webhooks import secretbox, signing
from webhooks.sentry import _before_breadcrumb, _before_send, init_sentry, scrub

SECRET = signing.generate_secret()
SEALED = secretbox.seal(SECRET, secretbox.new_key())
EMAIL = "jane.doe+vip@customer-example.com"


class Capture(Transport):
    """A sentry-sdk transport that keeps every envelope's serialized bytes."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.sent: list[bytes] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.sent.append(envelope.serialize())

    def text(self) -> str:
        return b"\n".join(self.sent).decode("utf-8", "replace")


@pytest.fixture
def captured() -> Iterator[Capture]:
    transport = Capture()
    assert init_sentry("https://public@sentry.invalid/1", transport=transport)
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: inactive again


def test_scrub_replaces_secrets_sealed_secrets_fernet_tokens_and_emails_at_any_depth() -> None:
    event = {"message": f"failed for {EMAIL} with {SECRET}", "extra": {"rows": [{"k": SEALED}, (SEALED[7:],)]},
             "ids": ["sub_abc", "msg_def"], "n": 3}
    cleaned = json.dumps(scrub(event))
    for leak in (SECRET, SECRET[6:], SEALED, SEALED[7:], EMAIL):
        assert leak not in cleaned
    assert "sub_abc" in cleaned and "msg_def" in cleaned and '"n": 3' in cleaned


def test_before_send_drops_the_request_and_scrubs_the_rest() -> None:
    event = {"request": {"data": {"secret": SECRET}}, "exception": {"values": [{"value": f"boom {SECRET}"}]},
             "breadcrumbs": {"values": [{"message": f"to {EMAIL}"}]}}
    out = json.dumps(_before_send(event, {}))
    assert "request" not in json.loads(out)
    assert SECRET not in out and EMAIL not in out


def test_breadcrumbs_lose_query_strings_and_fragments() -> None:
    crumb = {"category": "httplib", "data": {"url": f"https://crm.example.com/hook?token=abc&email={EMAIL}",
                                              "http.query": "token=abc", "http.fragment": "x"}}
    out = _before_breadcrumb(crumb, {})
    assert out is not None
    assert out["data"] == {"url": "https://crm.example.com/hook"}


def test_the_sdk_is_configured_with_the_safe_options(captured: Capture) -> None:
    options = sentry_sdk.get_client().options
    assert options["send_default_pii"] is False
    assert options["include_local_variables"] is False
    assert options["trace_propagation_targets"] == []
    assert options["max_request_body_size"] == "never"
    assert init_sentry(None) is False and init_sentry("") is False


def _fail_with_secrets_in_locals() -> None:
    secret = SECRET  # noqa: F841 - the point: a frame local Sentry must not send
    sealed = SEALED  # noqa: F841
    payload = {"visitor": {"email": EMAIL}}  # noqa: F841
    raise RuntimeError(f"could not sign for {EMAIL} with {SECRET}")


def test_an_exception_with_secrets_in_locals_and_message_reaches_sentry_clean(captured: Capture) -> None:
    # When an exception whose frame holds a secret, a sealed secret and an email is captured,
    # and a log record and a message mention them too
    try:
        _fail_with_secrets_in_locals()
    except RuntimeError:
        sentry_sdk.capture_exception()
    logging.getLogger("webhooks.test").error("delivery for %s signed with %s", EMAIL, SECRET)
    sentry_sdk.capture_message(f"dead letter for {EMAIL}", level="warning")
    sentry_sdk.flush(timeout=5)
    # Then the events were sent, the exception type and the function are there
    text = captured.text()
    assert "RuntimeError" in text and "_fail_with_secrets_in_locals" in text
    assert "dead letter for [email]" in text
    # And no secret, key part, sealed form or email address is in anything that left
    for leak in (SECRET, SECRET[6:], SEALED, SEALED[7:], EMAIL, "customer-example.com"):
        assert leak not in text, leak
    assert '"vars"' not in text


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_outgoing_http_requests_carry_no_sentry_trace_headers(captured: Capture) -> None:
    # Given Sentry is on and an HTTP server on loopback
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        # When this process makes a request inside a transaction (as a Celery task would)
        with sentry_sdk.start_transaction(name="webhooks.deliver", sampled=True):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
            conn.request("GET", "/hook?token=abc")
            conn.getresponse().read()
            conn.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    # Then the customer's endpoint sees no sentry-trace or baggage header
    assert len(_Recorder.seen) == 1
    assert "sentry-trace" not in _Recorder.seen[0] and "baggage" not in _Recorder.seen[0]
