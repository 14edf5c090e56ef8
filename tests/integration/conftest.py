"""Fixtures for tests that need a Redis and a worker of their own (not the session's shared
database): a module whose worker runs with special settings (an encryption key, Sentry, a
debug log) must be the only consumer of its queues."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.worker import Worker


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this module's own (config/redis.conf, a free port), stopped after it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def own_env(stack_env: dict[str, str], own_redis: RedisServer) -> dict[str, str]:
    """The stack environment on this module's own redis-server."""
    return {**stack_env, "WEBHOOKS_REDIS_URL": own_redis.url}


@pytest.fixture(scope="module")
def own_worker(own_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker on this module's own redis-server."""
    w = Worker(own_env, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield w
    w.stop()
