"""Shared fixtures: a real Redis database for integration tests, the TLS test CA, the
environment a worker and the producer share, and a real worker process."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis database, emptied once per session (tests use unique account names)."""
    if not _redis_up(TEST_REDIS_URL):
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {TEST_REDIS_URL}: .ci/run should have started one")
        pytest.skip(f"no Redis at {TEST_REDIS_URL}")
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.support.tls import make_ca

    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def stack_env(redis_url: str, test_ca) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Environment shared by the producer (this process) and the worker processes."""
    return {
        "WEBHOOKS_REDIS_URL": redis_url,
        "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        "WEBHOOKS_CA_BUNDLE": test_ca.ca_pem_path,
        "WEBHOOKS_TOTAL_TIMEOUT_S": "5",
        "WEBHOOKS_CONNECT_TIMEOUT_S": "2",
        "WEBHOOKS_PUBLISH_TIMEOUT_S": "2",
        "WEBHOOKS_MAX_COUNTDOWN_S": "60",
        "WEBHOOKS_VISIBILITY_TIMEOUT_S": "3600",
    }


@pytest.fixture
def configured(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process configured like the worker (settings reloaded; restored afterwards)."""
    from webhooks.settings import reload_settings

    for k, v in stack_env.items():
        monkeypatch.setenv(k, v)
    reload_settings()
    yield stack_env
    monkeypatch.undo()
    reload_settings()


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real worker process for the module (threads pool, deliveries+retries, beat)."""
    from tests.support.worker import Worker

    log = tmp_path_factory.mktemp("worker") / "worker.log"
    w = Worker(stack_env, log).start()
    yield w
    w.stop()


@pytest.fixture
def receiver(test_ca):  # type: ignore[no-untyped-def]
    from tests.support.receiver import Receiver

    with Receiver(test_ca) as r:
        yield r


@pytest.fixture
def account() -> str:
    """A fresh account name: tests never see each other's data."""
    return f"acct-{uuid.uuid4().hex[:12]}"
