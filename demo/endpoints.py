"""The demo's HTTPS endpoints: the test receiver (tests/support) with paths we can switch
between failing and healthy while it runs, and the signature check a receiver would do."""
from __future__ import annotations

import threading

from standardwebhooks.webhooks import Webhook

import webhooks
from tests.support.receiver import Receiver, Recorded, Reply
from tests.support.tls import TestCA, make_ca

__all__ = ["Endpoints", "Reply", "Recorded", "make_ca", "verify_both"]


class Endpoints(Receiver):
    """A Receiver whose ``fail(path)`` paths answer 500 until ``recover(path)``."""

    def __init__(self, ca: TestCA) -> None:
        super().__init__(ca)
        self._failing: set[str] = set()
        self._failing_lock = threading.Lock()

    def fail(self, path: str) -> None:
        """Answer every request to ``path`` with 500 from now on."""
        with self._failing_lock:
            self._failing.add(path)

    def recover(self, path: str) -> None:
        """Answer ``path`` normally again."""
        with self._failing_lock:
            self._failing.discard(path)

    def _next_reply(self, path: str) -> Reply:
        with self._failing_lock:
            if path in self._failing:
                return Reply(status=500, body=b"down for the demo")
        return super()._next_reply(path)


def verify_both(secret: str, request: Recorded) -> None:
    """Check the request's Standard Webhooks signature with our ``webhooks.verify`` and with the
    reference ``standardwebhooks`` package; raises on the first that refuses it."""
    webhooks.verify(secret, request.body, request.headers)
    Webhook(secret).verify(request.body, request.headers)
