"""Shared pieces of the benchmarks: a Redis to use, the environment, percentiles."""
from __future__ import annotations

import os
import statistics
import uuid

import redis

__all__ = ["bench_redis_url", "percentile", "fresh_account", "summary"]


def bench_redis_url() -> str:
    """BENCH_REDIS_URL, else the local Redis's database 14 (benchmarks never flush it)."""
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    return url


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
