"""Nothing secret leaks: a real worker at DEBUG with Sentry pointed at a local capturing server.

A known signing secret and a known email address (in the event payload) go through every path:
queued messages, a delivery, retries, a dead letter (reported to Sentry), an exception inside the
task (frame locals hold the secret), CLI listings. Then everything the worker logged, everything
that reached "Sentry", the Celery messages in Redis and the CLI output are searched: zero hits.
"""
from __future__ import annotations

import base64
import copy
import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis as redis_lib

import webhooks
from webhooks import deadletters, events, records, signing, subscriptions
from webhooks.enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE
from webhooks.keys import K
from tests.support.receiver import Reply
from tests.support.cli import run_cli as _cli
from tests.support.worker import Worker, wait_until

pytestmark = pytest.mark.integration

SECRET = signing.generate_secret()
EMAIL = "leak.canary+vip@customer-example.org"


def _needles() -> list[bytes]:
    """Every form in which the secret or the email could show up."""
    key_b64 = SECRET[len("whsec_"):]
    return [SECRET.encode(), key_b64.encode(), key_b64[:24].encode(), EMAIL.encode(), b"customer-example.org",
            json.dumps(EMAIL).encode()[1:-1]]


def _hits(blob: bytes) -> list[str]:
    return [n.decode() for n in _needles() if n in blob]


class SentryServer:
    """A plain HTTP server on loopback that records every envelope sentry-sdk POSTs to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._cond = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    raw = gzip.decompress(raw)
                elif encoding == "deflate":
                    raw = zlib.decompress(raw)
                elif encoding == "br":
                    import brotli  # type: ignore[import-not-found]

                    raw = brotli.decompress(raw)
                with owner._cond:
                    owner.bodies.append(self.path.encode() + b"\n" + raw)
                    owner._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self._server.server_address[1]}/1"

    def items(self) -> list[dict[str, Any]]:
        """Every event item (headers line, then JSON payload) of every envelope."""
        out = []
        with self._cond:
            bodies = list(self.bodies)
        for body in bodies:
            lines = body.split(b"\n")[2:]  # path, envelope header
            for header, payload in zip(lines[::2], lines[1::2]):
                try:
                    if json.loads(header).get("type") in ("event", "transaction"):
                        out.append(json.loads(payload))
                except ValueError:
                    continue
        return out

    def __enter__(self) -> "SentryServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _conversation_with_email() -> dict[str, Any]:
    data = copy.deepcopy(events.sample("conversation.ended"))
    data["transcript"][0]["text"] = f"Hi, I was charged twice. Reach me at {EMAIL} please."
    return data


def _queued_messages(r: redis_lib.Redis) -> list[bytes]:
    """Raw Celery messages waiting in our queues or held unacked by a worker, with their bodies decoded."""
    raw = r.lrange(DELIVERIES_QUEUE, 0, -1) + r.lrange(RETRIES_QUEUE, 0, -1) + list(r.hvals("unacked"))
    out = []
    for m in raw:
        doc = json.loads(m)
        message = doc[0] if isinstance(doc, list) else doc  # unacked holds [message, exchange, routing_key]
        body = message["body"]  # publish's messages keep it as text; Celery's are base64
        decoded = base64.b64decode(body) if message["properties"].get("body_encoding") == "base64" else body.encode()
        out.append(m + b"\n" + decoded)
    return out


# This test's worker must be the only consumer of the queues (a worker without SENTRY_DSN, of
# another test session, would take some of its deliveries), so it has a redis-server of its own.


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str]) -> dict[str, str]:
    return own_env


@pytest.fixture
def sentry() -> Iterator[SentryServer]:
    with SentryServer() as s:
        yield s


@pytest.fixture
def debug_worker(own_env: dict[str, str], sentry: SentryServer, tmp_path: Path) -> Iterator[Worker]:
    env = {**own_env, "SENTRY_DSN": sentry.dsn, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    w = Worker(env, tmp_path / "worker.log", concurrency=4, extra_args=("-l", "DEBUG"))
    yield w
    w.stop()


def test_no_secret_or_email_in_messages_logs_sentry_or_cli(configured, own_env, debug_worker, sentry, receiver, account):
    r = redis_lib.Redis.from_url(own_env["WEBHOOKS_REDIS_URL"])
    # Given three subscriptions signed with one known secret: healthy, failing, and one whose
    # record gets corrupted after publish (so the task raises with the secret in its frame locals)
    ok = subscriptions.create(account, receiver.url("/ok"), ["*"], secret=SECRET)
    down = subscriptions.create(account, receiver.url("/down"), ["conversation.ended"], secret=SECRET,
                                retry_schedule="1,1")
    broken = subscriptions.create(account, receiver.url("/broken"), ["conversation.ended"], secret=SECRET)
    receiver.script("/down", [Reply(status=500, body=b"down")] * 3)

    # When an event carrying the email is published while no worker runs yet
    published = webhooks.publish(account, "conversation.ended", _conversation_with_email())
    assert published.deliveries == 3
    ours = [m for m in _queued_messages(r) if any(d.encode() in m for d in published.delivery_ids)]
    # Then the queued Celery messages carry delivery ids only (argsrepr too), no secret, no email
    assert len(ours) == 3
    for m in ours:
        assert _hits(m) == []
        headers = json.loads(m.split(b"\n")[0])["headers"]
        assert headers["kwargsrepr"] == "{}"
        assert headers["argsrepr"] in {repr([d]) for d in published.delivery_ids}

    intact = r.hget(K.subs(account), broken.id)
    corrupt = json.loads(intact)
    corrupt["previous_secrets"] = [[SECRET, "not-a-time"]]
    r.hset(K.subs(account), broken.id, json.dumps(corrupt))

    # When the DEBUG worker with Sentry runs them
    debug_worker.start()
    by_sub = {records.load(d)["sub"]: d for d in published.delivery_ids}
    receiver.wait_for(lambda rc: len(rc.requests_for("/ok")) == 1, timeout_s=30)
    # (a retry of the failing one sits unacked in Redis during its countdown: look at it there)
    wait_until(lambda: any(by_sub[down.id].encode() in m for m in _queued_messages(r)) or
               records.load(by_sub[down.id]).get("status") == "dead", 30, message="the retry message in Redis")
    retry_messages = [m for m in _queued_messages(r) if by_sub[down.id].encode() in m]
    wait_until(lambda: {e["delivery_id"] for e in deadletters.list_dead(account)} == {by_sub[down.id], by_sub[broken.id]},
               60, message="two dead letters (exhausted, exception)")

    # Then Sentry got a warning for the exhausted delivery (ids only) and the exception
    def reported() -> bool:
        items = sentry.items()
        return (any(by_sub[down.id] in json.dumps(i) and i.get("level") == "warning" for i in items)
                and any("ValueError" in json.dumps(i.get("exception", {})) for i in items))
    try:
        wait_until(reported, 30, message="a dead-letter warning and the ValueError in Sentry")
    except AssertionError as exc:
        seen = [(i.get("level"), (i.get("logentry") or {}).get("message") or i.get("message"),
                 [v.get("type") for v in (i.get("exception") or {}).get("values", [])]) for i in sentry.items()]
        raise AssertionError(f"{exc}; Sentry received: {seen}") from None
    # ... exactly once, tagged with ids, and the expected PermanentDeliveryError is not also an error
    warnings = [i for i in sentry.items() if i.get("level") == "warning" and by_sub[down.id] in json.dumps(i)]
    assert len(warnings) == 1
    assert warnings[0]["tags"]["subscription_id"] == down.id and warnings[0]["tags"]["reason"] == "exhausted"
    assert not any("PermanentDeliveryError" in json.dumps(i.get("exception", {})) for i in sentry.items())
    # And the deliveries carried no Sentry trace headers to the customer's endpoint
    for req in receiver.requests:
        assert "sentry-trace" not in req.headers and "baggage" not in req.headers
        assert signing.verify(SECRET, req.body, req.headers)["data"]["transcript"][0]["text"].endswith("please.")

    r.hset(K.subs(account), broken.id, intact)  # (a corrupt record also breaks listings; not this test's point)

    # And the CLI listings an operator reads hold no secret or email
    cli_out = b""
    for args in (["subscriptions", "list"], ["subscriptions", "show", ok.id], ["subscriptions", "list", "--json"],
                 ["deliveries", "--attempts", "--json"], ["dead-letters", "list", "--json"],
                 ["dead-letters", "show", by_sub[down.id]], ["audit", "--json"], ["status"]):
        res = _cli(own_env, *args, "--account", account)
        assert res.returncode == 0, (args, res.stderr)
        cli_out += res.stdout.encode() + res.stderr.encode()

    # And not one hit anywhere: worker log, Sentry envelopes, Celery messages, CLI output
    log = debug_worker.log_path.read_bytes()
    assert b"DEBUG" in log and published.delivery_ids[0].encode() in log  # the grep is meaningful
    assert sentry.bodies
    places = {"worker log": log, "sentry": b"\n".join(sentry.bodies), "retry messages": b"\n".join(retry_messages),
              "cli": cli_out}
    assert {where: _hits(blob) for where, blob in places.items() if _hits(blob)} == {}
