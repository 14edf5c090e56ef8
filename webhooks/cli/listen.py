"""``webhooks listen``: a local receiver with a temporary subscription, for developers.

Like ``stripe listen``: start it, trigger events (``webhooks trigger`` or your app), watch real,
signed deliveries arrive and be verified; ``--forward-to`` relays them to your local app. The
subscription is deleted on exit (Ctrl-C, SIGTERM); its loopback allowance is explained in
webhooks/listening.py.
"""
from __future__ import annotations

import json
import signal
import ssl
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

from .common import account_option, cli, parse_duration

_MAX_BODY_BYTES = 10 * 1024 * 1024
_RELAYED = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")


class _Listener:
    """What the request handler needs: the secret, the reply, the output, attempts seen."""

    def __init__(self, secret: str, status: int, forward_to: str | None, print_body: bool, as_json: bool) -> None:
        self.secret = secret
        self.status = status
        self.forward_to = forward_to
        self.print_body = print_body
        self.as_json = as_json
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self._http: Any = None
        if forward_to:
            import urllib3

            self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))

    def forward(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """Relay to --forward-to; (status, body), or (502, reason) when the app cannot be reached."""
        try:
            resp = self._http.request("POST", self.forward_to, body=body,
                                      headers={k: v for k, v in headers.items() if k in _RELAYED}, redirect=False)
            return int(resp.status), bytes(resp.data[:65536])
        except Exception as exc:  # noqa: BLE001 - reported on the line, answered as 502
            return 502, f"forward to {self.forward_to} failed: {type(exc).__name__}".encode()

    def report(self, headers: dict[str, str], body: bytes, status: int, forwarded: bool) -> None:
        from .. import verify
        from ..errors import SignatureError

        received = time.time()
        webhook_id = headers.get("webhook-id", "-")
        try:
            envelope = verify(self.secret, body, headers)
            verified, problem = True, None
        except SignatureError as exc:
            envelope, verified, problem = None, False, str(exc)
            try:
                envelope = json.loads(body)
            except ValueError:
                pass
        event_type = envelope.get("type", "-") if isinstance(envelope, dict) else "-"
        latency_ms = None
        if isinstance(envelope, dict) and isinstance(envelope.get("timestamp"), str):
            try:
                published = datetime.fromisoformat(envelope["timestamp"].replace("Z", "+00:00")).timestamp()
                latency_ms = round((received - published) * 1000)
            except ValueError:
                pass
        with self.lock:
            self.seen[webhook_id] = attempt = self.seen.get(webhook_id, 0) + 1
            if self.as_json:
                line = {"at": received, "type": event_type, "webhook_id": webhook_id, "attempt": attempt,
                        "signature": "verified" if verified else "invalid", "latency_ms": latency_ms, "status": status}
                if problem:
                    line["signature_error"] = problem
                if self.print_body:
                    line["body"] = envelope if envelope is not None else body.decode("utf-8", "replace")
                click.echo(json.dumps(line))
                return
            when = datetime.fromtimestamp(received, timezone.utc).strftime("%H:%M:%SZ")
            sig = "signature verified" if verified else f"signature INVALID ({problem})"
            lat = "-" if latency_ms is None else f"{latency_ms} ms"
            to = f"→ {status}" + (" (from --forward-to)" if forwarded else "")
            click.echo(f"{when}  {event_type}  {webhook_id}  attempt {attempt}  {sig}  latency {lat}  {to}")
            if self.print_body:
                click.echo(json.dumps(envelope, indent=2, ensure_ascii=False) if envelope is not None
                           else body.decode("utf-8", "replace"))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_POST(self) -> None:
        listener: _Listener = self.server.listener
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY_BYTES:
            self._answer(413, b"too large")
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if listener.forward_to:
            status, reply = listener.forward(body, headers)
        else:
            status, reply = listener.status, b"ok" if 200 <= listener.status < 300 else b"webhooks listen --status"
        listener.report(headers, body, status, forwarded=bool(listener.forward_to))
        self._answer(status, reply)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _tls_context(address: str, ca_file: Path) -> ssl.SSLContext:
    try:
        import trustme
    except ImportError:
        raise click.UsageError("--https needs the trustme package: pip install trustme") from None
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(address).configure_cert(context)
    return context


@cli.command("listen")
@account_option
@click.option("--event", "-e", "events", multiple=True, default=("*",), show_default=True,
              help="Event type or pattern to receive (repeatable): conversation.ended, conversation.*, *.")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port to listen on (default: a free one).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Loopback address to listen on (127.0.0.1 or ::1).")
@click.option("--status", default=200, show_default=True, type=click.IntRange(100, 599),
              help="Status to answer with (e.g. 500 to rehearse retries).")
@click.option("--forward-to", default=None, metavar="URL",
              help="Relay each delivery (body and webhook-* headers) to your local app and answer with its status.")
@click.option("--print-body", is_flag=True, help="Print each delivery's body, pretty-printed.")
@click.option("--https", "use_https", is_flag=True,
              help="Serve HTTPS with a throwaway CA (needs trustme); the worker must trust --ca-file (WEBHOOKS_CA_BUNDLE).")
@click.option("--ca-file", default="webhooks-listen-ca.pem", show_default=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where --https writes its CA certificate.")
@click.option("--ttl", default="24h", show_default=True, help="The subscription stops being deliverable after this, even if never deleted.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per delivery on stdout.")
def listen_cmd(account: str, events: tuple[str, ...], port: int, address: str, status: int, forward_to: str | None,
               print_body: bool, use_https: bool, ca_file: Path, ttl: str, as_json: bool) -> None:
    """Receive the account's deliveries locally: a receiver on loopback, a temporary subscription to
    it (deleted on exit), and one line per delivery with its signature checked. Needs a worker on
    this machine (it delivers to 127.0.0.1)."""
    from .. import subscriptions
    from ..listening import create_listener

    ttl_s = parse_duration(ttl)
    try:
        server = ThreadingHTTPServer((address, port), _Handler)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {address}:{port} ({exc.strerror or exc})") from None
    server.daemon_threads = True
    bound_port = int(server.server_address[1])
    if use_https:
        server.socket = _tls_context(address, ca_file).wrap_socket(server.socket, server_side=True)
    try:
        sub, secret = create_listener(account, address, bound_port, events, scheme="https" if use_https else "http",
                                      ttl_s=ttl_s, actor="webhooks listen")
    except BaseException:
        server.server_close()
        raise
    server.listener = _Listener(secret, status, forward_to, print_body, as_json)  # type: ignore[attr-defined]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="webhooks-listen", daemon=True)
    thread.start()
    click.echo(f"Ready: {', '.join(sub.events)} events of account {account} are delivered to {sub.url} "
               f"(subscription {sub.id}, deleted on exit). Signing secret: {secret}", err=True)
    if use_https:
        click.echo(f"The worker must trust {ca_file.resolve()} (WEBHOOKS_CA_BUNDLE).", err=True)
    click.echo("Ctrl-C to stop.", err=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        subscriptions.delete(account, sub.id, actor="webhooks listen")
        click.echo(f"Deleted subscription {sub.id}.", err=True)
