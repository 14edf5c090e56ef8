"""A real HTTPS webhook receiver on loopback, for tests.

In-process use::

    ca = make_ca(tmp_path)
    with Receiver(ca) as r:
        r.script("/hook", [Reply(status=500), Reply(status=200)])
        ...  # POST to r.url("/hook")
        r.wait_for(lambda r: len(r.requests_for("/hook")) == 2)

Every POST is recorded (``r.requests``); replies are scripted per path, consumed in order, then
the default (200, ``b"ok"``). Behaviours: ``Reply.redirect``, ``Reply.drip`` (body one byte at a
time), ``Reply.drip_headers`` (status line and headers one byte at a time), ``Reply.huge``,
``Reply.hang``, ``Reply.retry_after``. The server speaks HTTP/1.1 with keep-alive, sets
Content-Length on every response, handles TLS handshakes in its worker threads, and never
crashes or logs when a client goes away.

Out-of-process use, for fault tests (``python -m tests.support.receiver --help``)::

    python -m tests.support.receiver --port 0 --ca-dir DIR --record FILE [--fail-mode 500]

prints ``PORT <n>`` as its first line, writes the CA to ``DIR/ca.pem``, appends one JSON line
``{"webhook_id", "path", "at"}`` per POST to FILE, answers ``GET /_received`` with the count
and ``POST /_mode?m=500`` (200|500|hang|drip) switches the default reply at run time.
"""
from __future__ import annotations

import argparse
import json
import signal
import socket
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

from .tls import DEFAULT_HOSTNAMES, TestCA, make_ca

__all__ = ["Receiver", "Reply", "Recorded", "main"]

# Idle keep-alive connections and stuck writes give up after this; stop() ends them sooner.
_CONNECTION_TIMEOUT_S = 30.0
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Recorded:
    """One POST the receiver saw. ``headers`` keys are lower-case; ``path`` has no query."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    client: tuple[str, int] = ("", 0)
    query: str = ""


@dataclass(frozen=True)
class Reply:
    """How to answer one request. Plain replies send ``status``, ``headers`` and ``body``."""

    status: int = 200
    body: bytes = b"ok"
    headers: Mapping[str, str] = field(default_factory=dict)
    mode: str = "normal"  # normal | drip | drip_headers | huge | hang
    bytes_per_s: float = 1.0
    total_bytes: int = 0
    max_s: float = 0.0
    delay_s: float = 0.0  # wait this long before answering (a slow but honest endpoint)

    @classmethod
    def redirect(cls, status: int, location: str) -> "Reply":
        """A 3xx with a Location header and an empty body."""
        return cls(status=status, body=b"", headers={"Location": location})

    @classmethod
    def retry_after(cls, status: int = 429, value: str = "2") -> "Reply":
        """A throttling answer carrying ``Retry-After: value``."""
        return cls(status=status, body=b"slow down", headers={"Retry-After": value})

    @classmethod
    def drip(cls, bytes_per_s: float = 1.0, total_bytes: int = 60) -> "Reply":
        """Headers at once (Content-Length ``total_bytes``), then the body ``bytes_per_s``."""
        return cls(mode="drip", bytes_per_s=bytes_per_s, total_bytes=total_bytes)

    @classmethod
    def drip_headers(cls, bytes_per_s: float = 1.0, total_bytes: int = 60) -> "Reply":
        """The status line and headers themselves, one byte at a time (``total_bytes`` at most)."""
        return cls(mode="drip_headers", bytes_per_s=bytes_per_s, total_bytes=total_bytes)

    @classmethod
    def huge(cls, n_bytes: int = 50 * 1024 * 1024) -> "Reply":
        """A 200 whose body is ``n_bytes`` long, streamed in chunks."""
        return cls(mode="huge", total_bytes=n_bytes)

    @classmethod
    def hang(cls, max_s: float = 30.0) -> "Reply":
        """Read the request, then answer nothing until ``max_s`` passes or the server stops."""
        return cls(mode="hang", max_s=max_s)


_MODES: dict[str, Reply] = {
    "200": Reply(status=200),
    "500": Reply(status=500, body=b"fail"),
    "hang": Reply.hang(max_s=3600.0),
    "drip": Reply.drip(bytes_per_s=1.0, total_bytes=3600),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_TLSServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def do_POST(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        owner = self.server.owner
        if owner.control and split.path.startswith("/_"):
            self._control(split.path, split.query)
            return
        owner._record(
            Recorded(
                path=split.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.time(),
                client=(str(self.client_address[0]), int(self.client_address[1])),
                query=split.query,
            )
        )
        self._answer(owner._next_reply(split.path))

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        owner = self.server.owner
        if owner.control and split.path.startswith("/_"):
            self._control(split.path, split.query)
            return
        self._answer(Reply())

    do_PUT = do_POST

    def _control(self, path: str, query: str) -> None:
        owner = self.server.owner
        if path == "/_received":
            self._answer(Reply(body=json.dumps({"count": len(owner.requests)}).encode()))
        elif path == "/_mode" and self.command == "POST":
            mode = parse_qs(query).get("m", [""])[0]
            if mode not in _MODES:
                self._answer(Reply(status=400, body=b"unknown mode"))
                return
            owner.set_default(_MODES[mode])
            self._answer(Reply(body=mode.encode()))
        else:
            self._answer(Reply(status=404, body=b"no such control path"))

    def _answer(self, reply: Reply) -> None:
        stop = self.server.owner._stopping
        if reply.delay_s > 0 and stop.wait(reply.delay_s):
            return
        if reply.mode == "hang":
            self.close_connection = True
            stop.wait(reply.max_s)
            return
        if reply.mode == "drip_headers":
            self.close_connection = True
            raw = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"x" * max(reply.total_bytes, 1)
            self._drip(raw[: max(reply.total_bytes, 1)], reply.bytes_per_s)
            return
        if reply.mode in ("drip", "huge"):
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Length", str(reply.total_bytes))
            self.end_headers()
            if reply.mode == "drip":
                self._drip(b"x" * reply.total_bytes, reply.bytes_per_s)
            else:
                self._stream(reply.total_bytes)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.body:
            self.wfile.write(reply.body)

    def _drip(self, data: bytes, bytes_per_s: float) -> None:
        interval = 1.0 / bytes_per_s if bytes_per_s > 0 else 1.0
        stop = self.server.owner._stopping
        for i in range(len(data)):
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:
                return  # the client went away
            if stop.wait(interval):
                return

    def _stream(self, n_bytes: int) -> None:
        chunk = b"x" * _CHUNK
        stop = self.server.owner._stopping
        left = n_bytes
        while left > 0 and not stop.is_set():
            piece = chunk if left >= _CHUNK else chunk[:left]
            try:
                self.wfile.write(piece)
            except OSError:
                return  # broken pipe / reset: the client stopped reading
            left -= len(piece)


class _TLSServer(ThreadingHTTPServer):
    """Accepts in the serving thread; the TLS handshake happens in each connection's thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default backlog of 5 drops SYNs when 64 clients connect at once

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext, owner: "Receiver") -> None:
        self.ssl_context = ssl_context
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(_CONNECTION_TIMEOUT_S)
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return  # failed handshake (e.g. the client refused our certificate)
        self.owner._connection_opened(conn, client_address)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except Exception:  # noqa: BLE001 - a client disconnect must never reach the server loop
            pass
        finally:
            self.owner._connection_closed(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # quiet: disconnects are normal here


class Receiver:
    """An HTTPS server on loopback that records POSTs and answers as scripted.

    ``Receiver(ca, hostnames=...)`` where ``ca`` is a TestCA from ``make_ca``; the certificate
    covers ``hostnames``. Use as a context manager, or call ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        ca: TestCA,
        hostnames: Iterable[str] = DEFAULT_HOSTNAMES,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        control: bool = False,
        on_record: Callable[[Recorded], None] | None = None,
    ) -> None:
        self.ca = ca
        self.hostnames = tuple(hostnames)
        self.control = control
        self._bind = bind
        self._requested_port = port
        self._on_record = on_record
        self._cond = threading.Condition(threading.RLock())
        self._requests: list[Recorded] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._default = Reply()
        self._stopping = threading.Event()
        self._live: set[ssl.SSLSocket] = set()
        self._clients: list[tuple[str, int]] = []
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> "Receiver":
        """Bind and serve in a daemon thread; returns self."""
        context = self.ca.server_context(self.hostnames)
        self._server = _TLSServer((self._bind, self._requested_port), context, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end hanging/dripping replies and close every open connection."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._cond:
            live = list(self._live)
        for conn in live:
            try:
                # the plain socket's shutdown: SSLSocket.shutdown would race the reader thread
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        """``https://<host>:<port><path>`` (IPv6 hosts are bracketed)."""
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"https://{shown}:{self.port}{path}"

    # scripting -------------------------------------------------------------------------------
    def script(self, path: str, replies: Iterable[Reply]) -> None:
        """Answer the next requests to ``path`` with ``replies`` in order, then the default."""
        with self._cond:
            self._scripts.setdefault(path, deque()).extend(replies)

    def set_default(self, reply: Reply) -> None:
        """The reply used when a path has no scripted reply left."""
        with self._cond:
            self._default = reply

    def _next_reply(self, path: str) -> Reply:
        with self._cond:
            queue = self._scripts.get(path)
            if queue:
                return queue.popleft()
            return self._default

    # recording -------------------------------------------------------------------------------
    def _record(self, recorded: Recorded) -> None:
        with self._cond:
            self._requests.append(recorded)
            self._cond.notify_all()
        if self._on_record is not None:
            self._on_record(recorded)

    def _connection_opened(self, conn: ssl.SSLSocket, client: tuple[str, int]) -> None:
        with self._cond:
            self._live.add(conn)
            self._clients.append((str(client[0]), int(client[1])))
            self._cond.notify_all()

    def _connection_closed(self, conn: ssl.SSLSocket) -> None:
        with self._cond:
            self._live.discard(conn)
            self._cond.notify_all()

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every recorded POST, oldest first."""
        with self._cond:
            return list(self._requests)

    def requests_for(self, path: str) -> list[Recorded]:
        """The recorded POSTs to ``path`` (query ignored)."""
        return [r for r in self.requests if r.path == path]

    @property
    def connections(self) -> list[tuple[str, int]]:
        """Client (address, port) of every TLS connection accepted, in order."""
        with self._cond:
            return list(self._clients)

    @property
    def open_connections(self) -> int:
        """How many connections are open right now."""
        with self._cond:
            return len(self._live)

    def wait_for(self, predicate: Callable[["Receiver"], bool], timeout_s: float = 10.0) -> None:
        """Block until ``predicate(self)`` is true; raise AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(r.path, r.headers.get("webhook-id")) for r in self._requests[-10:]]
                    raise AssertionError(
                        f"receiver condition not met within {timeout_s:g}s: "
                        f"{len(self._requests)} requests recorded (last: {seen}), "
                        f"{len(self._clients)} connections, {len(self._live)} open"
                    )
                # short waits: the predicate may depend on things that do not notify
                self._cond.wait(min(remaining, 0.05))


def main(argv: list[str] | None = None) -> int:
    """Run a receiver in this process until SIGTERM/SIGINT (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.receiver", description="HTTPS test receiver.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--bind", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--ca-dir", required=True, help="directory where ca.pem is written")
    parser.add_argument("--record", required=True, help="file to append one JSON line per POST to")
    parser.add_argument("--fail-mode", choices=sorted(_MODES), default="200", help="initial default reply")
    args = parser.parse_args(argv)

    record_lock = threading.Lock()
    record_file = open(args.record, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def on_record(rec: Recorded) -> None:
        line = json.dumps({"webhook_id": rec.headers.get("webhook-id"), "path": rec.path, "at": rec.at})
        with record_lock:
            record_file.write(line + "\n")
            record_file.flush()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    ca = make_ca(args.ca_dir)
    receiver = Receiver(ca, bind=args.bind, port=args.port, control=True, on_record=on_record)
    receiver.set_default(_MODES[args.fail_mode])
    with receiver:
        print(f"PORT {receiver.port}", flush=True)
        while not done.wait(1.0):
            pass
    record_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
