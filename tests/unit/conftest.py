"""Unit-test fixtures: a fakeredis client in place of the real one, fresh settings."""
from __future__ import annotations

from typing import Iterator

import fakeredis
import pytest


@pytest.fixture
def fake_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    """webhooks.connection.get_redis() returns a fresh fakeredis (with Lua) for this test."""
    from webhooks import connection
    from webhooks.settings import reload_settings

    monkeypatch.setenv("WEBHOOKS_ALLOW_NETWORKS", "127.0.0.0/8")
    reload_settings()
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(connection, "_client", client)
    yield client
    monkeypatch.setattr(connection, "_client", None)
    monkeypatch.undo()
    reload_settings()
