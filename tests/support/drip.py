"""Hostile HTTPS servers on loopback that drip their answer, for deadline tests.

``DripServer(ca, shape, interval_s=0.2)`` listens on 127.0.0.1 and, for every connection,
answers in one of these shapes (every byte or line separated by ``interval_s``, so no single
socket read ever waits long enough for a per-read timeout to fire):

``headers``        the status line and headers, one byte at a time
``body_length``    headers with ``Content-Length: 100000``, then the body one byte at a time
``body_close``     the same with ``Connection: close`` (http.client drops ``conn.sock``)
``close_no_length`` ``Connection: close`` and no length: the body ends at EOF, one byte at a time
``chunked``        ``Transfer-Encoding: chunked``, one one-byte chunk at a time
``continue``       ``100 Continue`` interim responses, one after the other, for ever
``continue_drip``  one ``100 Continue``, then the final response's headers one byte at a time
``silent``         completes the TLS handshake, reads the request, sends nothing
``handshake``      the TLS handshake itself: the server's flight one byte at a time

Real sockets and real TLS (the test CA's certificate). ``connections`` counts accepted
connections, ``open_connections`` those still open: a client that gave up closed its end
and the server thread noticed.
"""
from __future__ import annotations

import socket
import ssl
import threading
from typing import Callable

from .tls import TestCA

__all__ = ["DripServer", "SHAPES"]

SHAPES = (
    "headers",
    "body_length",
    "body_close",
    "close_no_length",
    "chunked",
    "continue",
    "continue_drip",
    "silent",
    "handshake",
)
_RUN_S = 120.0  # a dripping reply never lasts longer than this


class DripServer:
    """One hostile server; use as a context manager. ``url(path)`` is its https URL."""

    def __init__(self, ca: TestCA, shape: str, *, interval_s: float = 0.2) -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}")
        self.shape = shape
        self.interval_s = interval_s
        self._context = ca.server_context()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.connections = 0
        self.open_connections = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, name=f"drip-{shape}", daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "DripServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)

    # serving ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self.open_connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        raw.settimeout(_RUN_S)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.shape == "handshake":
                self._drip_handshake(raw)
                return
            conn = self._context.wrap_socket(raw, server_side=True)
            self._read_request(conn)
            with self._lock:
                self.requests += 1
            getattr(self, f"_shape_{self.shape}")(conn)
        except (OSError, ValueError):
            pass  # the client went away: that is the point
        finally:
            try:
                raw.close()
            except OSError:
                pass
            with self._lock:
                self.open_connections -= 1

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed before its request ended")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("client closed mid-body")
            body += chunk

    def _wait(self) -> bool:
        """Sleep one interval; False when the server is stopping."""
        return not self._stop.wait(self.interval_s)

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
            if not self._wait():
                return

    def _forever(self, conn: socket.socket, piece: Callable[[], bytes]) -> None:
        while self._wait():
            conn.sendall(piece())

    # shapes ----------------------------------------------------------------------------------
    def _shape_headers(self, conn: socket.socket) -> None:
        self._drip(conn, b"HTTP/1.1 200 OK\r\nX-Drip: " + b"x" * 4000 + b"\r\nContent-Length: 2\r\n\r\nok")

    def _shape_body_length(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        self._forever(conn, lambda: b"x")

    def _shape_body_close(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
        self._forever(conn, lambda: b"x")

    def _shape_close_no_length(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        self._forever(conn, lambda: b"x")

    def _shape_chunked(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        self._forever(conn, lambda: b"1\r\nx\r\n")

    def _shape_continue(self, conn: socket.socket) -> None:
        self._forever(conn, lambda: b"HTTP/1.1 100 Continue\r\n\r\n")

    def _shape_continue_drip(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._shape_headers(conn)

    def _shape_silent(self, conn: socket.socket) -> None:
        while conn.recv(1):  # returns b"" (or raises) once the client has gone
            pass

    def _drip_handshake(self, raw: socket.socket) -> None:
        """A TLS server through memory BIOs whose every outgoing byte is sent one at a time."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._context.wrap_bio(incoming, outgoing, server_side=True)
        while not self._stop.is_set():
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    self._drip(raw, pending)
                    continue
                data = raw.recv(65536)
                if not data:
                    return
                incoming.write(data)
        while raw.recv(1):
            pass
