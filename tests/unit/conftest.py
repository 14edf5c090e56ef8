"""Unit-test fixtures: fakeredis in place of the real client, a fake clock, fresh settings."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import fakeredis
import pytest


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    """webhooks.connection.get_redis() returns a fresh fakeredis (with Lua) for this test.

    WEBHOOKS_REDIS_URL points at a port nothing listens on: a test that lost its fake fails
    instead of writing to a real Redis.
    """
    from webhooks import connection, subcache
    from webhooks.settings import reload_settings

    monkeypatch.setenv("WEBHOOKS_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")
    monkeypatch.delenv("WEBHOOKS_ENCRYPTION_KEY", raising=False)
    # Unit tests store plain secrets (the development flag); encryption by default is tested
    # in test_secretbox.py and, on a real stack, in tests/integration.
    monkeypatch.setenv("WEBHOOKS_ALLOW_PLAINTEXT_SECRETS", "1")
    reload_settings()
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(connection, "_client", client)
    # the producer's copies of subscriptions start empty, as in a new process
    monkeypatch.setattr(subcache, "_known", OrderedDict())
    yield client
    monkeypatch.undo()
    reload_settings()


@pytest.fixture
def r(fake_redis: fakeredis.FakeRedis) -> fakeredis.FakeRedis:
    """Short name for ``fake_redis``."""
    return fake_redis


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis() -> fakeredis.FakeRedis:
    """A bare fakeredis client (not wired into webhooks.connection)."""
    return fakeredis.FakeRedis()
