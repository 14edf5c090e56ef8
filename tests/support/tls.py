"""A throw-away certificate authority for tests, built with ``trustme``.

``make_ca(tmpdir)`` writes the CA certificate to ``tmpdir/ca.pem`` (give that path to
``WEBHOOKS_CA_BUNDLE`` / ``Settings(ca_bundle=...)``) and issues server certificates on demand.
"""
from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import trustme

__all__ = ["TestCA", "make_ca", "DEFAULT_HOSTNAMES"]

DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1", "receiver.test")


@dataclass
class TestCA:
    """A trustme CA whose PEM sits at ``ca_pem_path``."""

    __test__ = False  # not a pytest test class despite the name

    ca: trustme.CA
    ca_pem_path: str
    _contexts: dict[tuple[str, ...], ssl.SSLContext] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def server_context(self, hostnames: tuple[str, ...] = DEFAULT_HOSTNAMES) -> ssl.SSLContext:
        """A server-side TLS context with a certificate for ``hostnames`` (names or IPs).

        Contexts are cached per hostnames tuple: issuing a certificate costs a key generation.
        """
        key = tuple(hostnames)
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is None:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                self.ca.issue_cert(*key).configure_cert(ctx)
                self._contexts[key] = ctx
            return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client-side TLS context that trusts only this CA (for ad-hoc test clients)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx


def make_ca(tmpdir: str | Path) -> TestCA:
    """Create a CA and write its certificate to ``tmpdir/ca.pem``; returns the TestCA."""
    directory = Path(tmpdir)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    pem_path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(pem_path))
    return TestCA(ca=ca, ca_pem_path=str(pem_path))
