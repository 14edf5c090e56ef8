"""Shared pieces of the benchmarks: a Redis to use, the environment, percentiles."""
from __future__ import annotations

import atexit
import os
import shutil
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

import redis

__all__ = ["bench_redis_url", "percentile", "fresh_account", "summary"]


_private: list[Any] = []


def bench_redis_url() -> str:
    """BENCH_REDIS_URL, else a private redis-server of this process (the repository's config,
    AOF everysec, like production), started once and stopped with it: what a benchmark
    writes is measured on a server nobody else uses, and leaves nothing behind."""
    url = os.environ.get("BENCH_REDIS_URL")
    if url:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        return url
    if not _private:
        from .harness.redisproc import PrivateRedis

        tmp = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        server = PrivateRedis(tmp).start()
        _private.append(server)
        atexit.register(lambda: (server.stop(), shutil.rmtree(tmp, ignore_errors=True)))
    return str(_private[0].url(0))


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def fresh_account(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def summary(values_ms: list[float]) -> str:
    return (f"median {statistics.median(values_ms):.3f} ms, p99 {percentile(values_ms, 99):.3f} ms, "
            f"mean {statistics.fmean(values_ms):.3f} ms over {len(values_ms)}")
