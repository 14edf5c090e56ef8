"""Deliver one HTTP request, safely: the transport seam and its real and stub implementations.

``HttpTransport.send`` runs the URL guard (every delivery: DNS answers change), connects to the
FIRST vetted address itself (never resolving again), verifies TLS against the hostname (SNI),
follows no redirects, enforces a total deadline whatever the server drips, reads at most
``max_response_bytes`` of the body, and maps every third-party failure to our DeliveryError at
one boundary (``_translate``). Any HTTP status is a response, not an error.

Built on urllib3 directly: one ``ssl.SSLContext`` for the process (system CAs plus
``settings.ca_bundle``), one keep-alive pool per (address, port, hostname), and no environment
variables read at all (HTTPS_PROXY, REQUESTS_CA_BUNDLE, ... have no effect; the only proxy is
``settings.egress_proxy``). Through that proxy we CONNECT to the vetted address, so the proxy
does not resolve and the address we vetted is still the one reached.

Error kinds: ``url_refused`` (permanent), ``tls``, ``connect``, ``connect_timeout``,
``timeout`` (total deadline or read timeout), ``network`` (anything else).
"""
from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Timeout

from .deadline import CURRENT, WATCHDOG, Guard
from .errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError, UrlRefused
from .settings import Settings, get_settings
from .urlguard import Resolver, Target, check_url

# urllib3 logs every request line, query string included, at DEBUG; a customer's endpoint
# URL may carry a token there. Our own log lines name the subscription instead.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

__all__ = [
    "OutgoingRequest",
    "IncomingResponse",
    "Transport",
    "HttpTransport",
    "FakeTransport",
    "USER_AGENT",
]


def _version() -> str:
    try:
        return metadata.version("chat-webhooks")
    except metadata.PackageNotFoundError:
        return "dev"


USER_AGENT = f"chat-webhooks/{_version()}"
_READ_CHUNK = 64 * 1024
_MAX_POOLS = 512
# Trace-propagation headers an APM (sentry-sdk's http.client patch) could add: a customer's
# endpoint must never receive our trace ids.
_NEVER_SENT = frozenset({"sentry-trace", "baggage", "traceparent", "tracestate"})


@dataclass(frozen=True)
class OutgoingRequest:
    """One POST to deliver: the endpoint URL, the exact body bytes and the caller's headers."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    # A `webhooks listen` receiver's loopback (address, port) this request may go to (urlguard).
    local_target: tuple[str, int] | None = None


@dataclass(frozen=True)
class IncomingResponse:
    """What came back. ``headers`` keys are lower-case; ``body`` holds at most
    ``max_response_bytes`` (``truncated`` says more was sent); ``address`` is the IP used."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool
    elapsed_ms: float
    address: str


class Transport(Protocol):
    """The seam between delivery logic and the network."""

    def send(self, request: OutgoingRequest) -> IncomingResponse:
        """Deliver ``request``; return the response (any status) or raise DeliveryError."""
        ...


def _pristine_putrequest() -> Callable[..., Any] | None:
    """http.client's own putrequest, even if an APM (sentry-sdk) has wrapped it already.

    Best effort: follows ``__wrapped__`` or a closure variable holding the original. Returns
    None if it cannot be found (then headers are still filtered in putheader).
    """
    fn: Any = http.client.HTTPConnection.putrequest
    for _ in range(5):
        if getattr(fn, "__module__", None) == "http.client":
            return fn  # type: ignore[no-any-return]
        inner = getattr(fn, "__wrapped__", None)
        if inner is None and getattr(fn, "__closure__", None):
            names = fn.__code__.co_freevars
            for name, cell in zip(names, fn.__closure__):
                if "putrequest" in name and callable(cell.cell_contents):
                    inner = cell.cell_contents
                    break
        if inner is None:
            return None
        fn = inner
    return None


_PUTREQUEST = _pristine_putrequest()


class _GuardedMixin:
    """Connection behaviour we add: watched by the deadline, no tracing side channel.

    The connection's socket is attached to the guard of the send() running on this thread
    (once per guard): the guard keeps its own duplicate of the descriptor, taken while the
    connection is open, so the watchdog can still cut the connection after http.client has
    dropped ``self.sock`` (a ``Connection: close`` response is read through ``resp.fp``).
    """

    _guard: Guard | None = None  # the guard this connection's socket is attached to

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        self._guard = None
        self._attach(sock)  # before the TLS handshake, which may drip too
        return sock

    def _attach(self, sock: socket.socket) -> None:
        guard: Guard | None = getattr(CURRENT, "guard", None)
        if guard is not None and guard is not self._guard:
            WATCHDOG.attach(guard, sock)
            self._guard = guard

    def request(self, *args: Any, **kwargs: Any) -> None:
        sock = getattr(self, "sock", None)
        if sock is not None:
            self._attach(sock)  # a reused keep-alive connection: _new_conn was not called
        super().request(*args, **kwargs)  # type: ignore[misc]

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        # sentry-sdk's stdlib integration wraps http.client's putrequest to open spans,
        # record breadcrumbs with the URL and add trace headers; deliveries bypass it.
        if _PUTREQUEST is not None:
            _PUTREQUEST(self, method, url, skip_host=skip_host, skip_accept_encoding=skip_accept_encoding)
        else:
            super().putrequest(method, url, skip_host=skip_host, skip_accept_encoding=skip_accept_encoding)  # type: ignore[misc]

    def putheader(self, header: str, *values: str) -> None:
        name = header.decode("latin-1") if isinstance(header, bytes) else header
        if name.lower() in _NEVER_SENT:
            return
        super().putheader(header, *values)  # type: ignore[misc]


class _GuardedHTTPSConnection(_GuardedMixin, HTTPSConnection):
    pass


class _GuardedHTTPConnection(_GuardedMixin, HTTPConnection):
    pass


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


# --- the real transport ----------------------------------------------------------------------
def _build_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # system CAs, CERT_REQUIRED
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # OpenSSL checks the certificate against server_hostname during the handshake
    context.check_hostname = True
    return context


class HttpTransport:
    """The real transport (see the module docstring). Thread-safe; share one per process."""

    def __init__(self, settings: Settings | None = None, *, resolver: Resolver | None = None, pool_maxsize: int = 64) -> None:
        """Build the TLS context once. ``pool_maxsize`` connections are kept per pool: at least
        the number of concurrent deliveries to one endpoint, or connections get discarded.

        Raises OSError/ssl.SSLError if ``settings.ca_bundle`` cannot be loaded.
        """
        self._settings = settings if settings is not None else get_settings()
        self._resolver = resolver
        self._pool_maxsize = pool_maxsize
        self._ssl_context = _build_ssl_context(self._settings.ca_bundle)
        self._pools: OrderedDict[tuple[str, str, int, str], HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()
        self._proxy: urllib3.ProxyManager | None = None
        if self._settings.egress_proxy:
            self._proxy = urllib3.ProxyManager(
                self._settings.egress_proxy,
                num_pools=_MAX_POOLS,
                maxsize=pool_maxsize,
                block=False,
                retries=False,
            )
            self._proxy.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def _pool(self, target: Target, address: str) -> HTTPConnectionPool:
        if self._proxy is not None:
            kwargs: dict[str, Any] = {}
            if target.scheme == "https":
                kwargs = {"server_hostname": target.host, "ssl_context": self._ssl_context}
            return self._proxy.connection_from_host(address, target.port, target.scheme, pool_kwargs=kwargs)
        key = (target.scheme, address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            if target.scheme == "https":
                pool = _GuardedHTTPSPool(
                    address,
                    target.port,
                    maxsize=self._pool_maxsize,
                    block=False,
                    retries=False,
                    server_hostname=target.host,
                    ssl_context=self._ssl_context,
                )
            else:
                pool = _GuardedHTTPPool(address, target.port, maxsize=self._pool_maxsize, block=False, retries=False)
            self._pools[key] = pool
            while len(self._pools) > _MAX_POOLS:
                _, old = self._pools.popitem(last=False)
                old.close()  # idle connections only; busy ones close when returned
            return pool

    def _headers(self, request: OutgoingRequest, target: Target) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "user-agent")}
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        headers["Host"] = target.host_header
        headers["User-Agent"] = USER_AGENT
        return headers

    def send(self, request: OutgoingRequest) -> IncomingResponse:
        """POST ``request.body`` to ``request.url`` and return the response, whatever its status.

        Raises PermanentDeliveryError(kind="url_refused") when the guard refuses the URL, and
        TransientDeliveryError(kind="tls"|"connect"|"connect_timeout"|"timeout"|"network")
        when the request fails; ``host`` is set, the message never holds body or headers.
        """
        settings = self._settings
        started = time.monotonic()
        try:
            target = check_url(request.url, settings=settings, resolver=self._resolver, local_target=request.local_target)
        except UrlRefused as exc:
            raise PermanentDeliveryError(
                f"URL refused by rule {exc.rule!r}: {exc.detail}", kind="url_refused", host=_host_of(request.url)
            ) from exc
        address = target.addresses[0]
        pool = self._pool(target, address)
        url = target.path
        if self._proxy is not None and target.scheme == "http":
            shown = f"[{address}]" if ":" in address else address
            url = f"http://{shown}:{target.port}{target.path}"
        deadline = started + settings.total_timeout_s
        guard = WATCHDOG.start(deadline)
        CURRENT.guard = guard
        response = None
        try:
            remaining = max(deadline - time.monotonic(), 0.001)
            response = pool.urlopen(
                "POST",
                url,
                body=request.body,
                headers=self._headers(request, target),
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                release_conn=False,
                timeout=Timeout(connect=min(settings.connect_timeout_s, remaining), read=remaining),
            )
            body, truncated = _read_capped(response, settings.max_response_bytes)
            if guard.fired:
                raise TimeoutError("total deadline passed")
        except Exception as exc:  # noqa: BLE001 - the one boundary where third-party errors become ours
            if response is not None:
                response.close()
                response.release_conn()
            raise _translate(exc, target.host, fired=guard.fired, total_s=settings.total_timeout_s) from exc
        finally:
            WATCHDOG.finish(guard)
            CURRENT.guard = None
        if truncated:
            response.close()  # unread bytes remain: this connection cannot be reused
        response.release_conn()
        return IncomingResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.itermerged()},
            body=body,
            truncated=truncated,
            elapsed_ms=(time.monotonic() - started) * 1000.0,
            address=address,
        )

    def close(self) -> None:
        """Close every idle pooled connection (the transport stays usable)."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()
        if self._proxy is not None:
            self._proxy.clear()


def _read_capped(response: urllib3.BaseHTTPResponse, cap: int) -> tuple[bytes, bool]:
    """Read at most ``cap`` body bytes; truncated when the server had more to send."""
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        chunk = response.read(min(_READ_CHUNK, cap + 1 - size), decode_content=False)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    data = b"".join(parts)
    return data[:cap], size > cap


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _causes(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    todo: deque[BaseException] = deque([exc])
    while todo:
        e = todo.popleft()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None), *getattr(e, "args", ())):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _translate(exc: Exception, host: str, *, fired: bool, total_s: float) -> DeliveryError:
    """Map one urllib3/ssl/socket failure to the most specific DeliveryError."""
    from urllib3 import exceptions as u3
    from urllib3.util import ssl_match_hostname as u3_ssl_match

    chain = list(_causes(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if fired:
        return TransientDeliveryError(f"no complete response from {host} within the total deadline of {total_s:g}s", kind="timeout", host=host)
    if has(ssl.SSLCertVerificationError, u3_ssl_match.CertificateError):
        detail = next((e.verify_message for e in chain if isinstance(e, ssl.SSLCertVerificationError)), "name mismatch")
        return TransientDeliveryError(f"TLS certificate of {host} refused: {detail}", kind="tls", host=host)
    if has(ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return TransientDeliveryError(f"{host} closed the connection during TLS", kind="connect", host=host)
    if has(u3.SSLError, ssl.SSLError):
        return TransientDeliveryError(f"TLS with {host} failed", kind="tls", host=host)
    if has(u3.NewConnectionError, ConnectionRefusedError):
        return TransientDeliveryError(f"could not connect to {host}", kind="connect", host=host)
    if has(u3.ConnectTimeoutError):
        return TransientDeliveryError(f"connecting to {host} timed out", kind="connect_timeout", host=host)
    if has(u3.ReadTimeoutError, socket.timeout):
        return TransientDeliveryError(f"{host} did not answer in time", kind="timeout", host=host)
    if has(ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected):
        return TransientDeliveryError(f"{host} closed the connection", kind="connect", host=host)
    root = type(chain[-1]).__name__ if chain else type(exc).__name__
    return TransientDeliveryError(f"network error talking to {host} ({root})", kind="network", host=host)


# --- the stub twin ---------------------------------------------------------------------------
class FakeTransport:
    """Records every request and answers from a script, then ``default``.

    Script items are IncomingResponse (returned) or exceptions (raised), consumed in order;
    ``script(..., url=...)`` scripts one URL only. Thread-safe.
    """

    def __init__(self, script: Iterable[IncomingResponse | BaseException] = (), *, default: IncomingResponse | None = None) -> None:
        self.requests: list[OutgoingRequest] = []
        self.default = default if default is not None else self.response(200)
        self._script: deque[IncomingResponse | BaseException] = deque(script)
        self._by_url: dict[str, deque[IncomingResponse | BaseException]] = {}
        self._lock = threading.Lock()
        self.closed = False

    @staticmethod
    def response(status: int = 200, body: bytes = b"ok", headers: Mapping[str, str] | None = None, *, elapsed_ms: float = 1.0) -> IncomingResponse:
        """A ready-made IncomingResponse for scripts."""
        return IncomingResponse(
            status=status,
            headers={k.lower(): v for k, v in (headers or {}).items()},
            body=body,
            truncated=False,
            elapsed_ms=elapsed_ms,
            address="192.0.2.1",
        )

    def script(self, *items: IncomingResponse | BaseException, url: str | None = None) -> None:
        """Append answers: for every URL, or for ``url`` only (checked first)."""
        with self._lock:
            queue = self._script if url is None else self._by_url.setdefault(url, deque())
            queue.extend(items)

    def send(self, request: OutgoingRequest) -> IncomingResponse:
        """Record ``request``; return or raise the next scripted item (else ``default``)."""
        with self._lock:
            self.requests.append(request)
            queue = self._by_url.get(request.url)
            if queue:
                item = queue.popleft()
            elif self._script:
                item = self._script.popleft()
            else:
                item = self.default
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Mark the transport closed (for assertions)."""
        self.closed = True
