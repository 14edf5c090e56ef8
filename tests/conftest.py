"""Shared fixtures: a real Redis database for integration tests, the TLS test CA, the
environment a worker and the producer share, and a real worker process."""
from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest
import redis

TEST_REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
# Databases a test session may claim (14 is the benchmarks', 0 the default of users).
_TEST_DBS = (13, 12, 11, 10, 9, 8, 7, 6)


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis database of this session's own, emptied at the start.

    Test sessions running at once (several developers' checkouts on one machine) must not
    share a database: their workers would consume each other's deliveries. Each session
    claims a free database with a lease key and releases it at the end.
    """
    base = TEST_REDIS_BASE.rstrip("/")
    if "/" in base.split("://", 1)[1]:
        base = base.rsplit("/", 1)[0]
    if not _redis_up(f"{base}/0"):
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {base}: .ci/run should have started one")
        pytest.skip(f"no Redis at {base}")
    token = uuid.uuid4().hex
    for db in _TEST_DBS:
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.set("wh:test-session", token, nx=True, ex=3600):
            client.flushdb()
            client.set("wh:test-session", token, ex=3600)
            try:
                yield f"{base}/{db}"
            finally:
                if client.get("wh:test-session") == token.encode():
                    client.delete("wh:test-session")
            return
    pytest.fail(f"no free test database at {base} (all of {_TEST_DBS} are claimed by running sessions)")


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.support.tls import make_ca

    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def stack_env(redis_url: str, test_ca) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Environment shared by the producer (this process) and the worker processes.

    Secrets are encrypted at rest by default: the session has a key of its own."""
    from webhooks.secretbox import new_key

    return {
        "WEBHOOKS_REDIS_URL": redis_url,
        "WEBHOOKS_ENCRYPTION_KEY": new_key(),
        "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
        "WEBHOOKS_CA_BUNDLE": test_ca.ca_pem_path,
        "WEBHOOKS_TOTAL_TIMEOUT_S": "5",
        "WEBHOOKS_CONNECT_TIMEOUT_S": "2",
        "WEBHOOKS_PUBLISH_TIMEOUT_S": "2",
        "WEBHOOKS_MAX_COUNTDOWN_S": "60",
        "WEBHOOKS_VISIBILITY_TIMEOUT_S": "3600",
    }


@pytest.fixture(scope="module")
def producer_env(stack_env: dict[str, str]) -> dict[str, str]:
    """The environment ``configured`` applies to this process; a module whose worker runs
    with other settings overrides this fixture."""
    return stack_env


@pytest.fixture
def configured(producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """This process configured like the worker (settings reloaded; restored afterwards)."""
    from webhooks.settings import reload_settings

    for k, v in producer_env.items():
        monkeypatch.setenv(k, v)
    reload_settings()
    yield producer_env
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
