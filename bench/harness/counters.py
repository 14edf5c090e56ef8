"""What the bench reads at the start and end of a measured window: CPU seconds of process
trees (``/proc/<pid>/stat`` utime+stime via psutil) and the Redis server's own counters."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

import psutil
import redis

__all__ = ["tree_cpu_s", "RedisCounters", "redis_counters", "Snapshot"]

# Commands a script runs count in INFO commandstats under their own names (redis.call goes
# through the same call() that updates them), so the sum below is every command Redis ran.
_SCRIPT_CALLS = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_evalsha_ro", "cmdstat_eval_ro", "cmdstat_fcall",
                 "cmdstat_fcall_ro")


def tree_cpu_s(pids: Iterable[int]) -> float:
    """User+system CPU seconds of each pid and all its live descendants."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


@dataclass(frozen=True)
class RedisCounters:
    """Server-wide Redis counters at one moment."""

    cpu_s: float  # used_cpu_user + used_cpu_sys: the server process (getrusage), not forked children
    commands: int  # sum of INFO commandstats calls, minus the INFO calls the bench makes itself
    scripts: int  # top-level EVAL/EVALSHA/FCALL calls
    reads: int  # total_reads_processed: one per read event on a client socket (see sidebyside)
    # command -> (calls, µs inside the command): a script's µs include its inner commands'
    per_command: dict[str, tuple[int, int]] = field(default_factory=dict)


def redis_counters(r: redis.Redis) -> RedisCounters:
    info = r.info("cpu", "stats", "commandstats")
    calls = {k: int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_") and isinstance(v, dict)}
    return RedisCounters(
        cpu_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        commands=sum(calls.values()) - calls.get("cmdstat_info", 0),
        scripts=sum(calls.get(k, 0) for k in _SCRIPT_CALLS),
        reads=int(info["total_reads_processed"]),
        per_command={k[len("cmdstat_"):]: (int(v["calls"]), int(v["usec"])) for k, v in info.items()
                     if k.startswith("cmdstat_") and isinstance(v, dict) and k != "cmdstat_info"},
    )


@dataclass(frozen=True)
class Snapshot:
    """Everything read at one edge of a measured window."""

    at: float
    delivered: int
    worker_cpu_s: float
    receiver_cpu_s: float
    redis: RedisCounters


def snapshot(delivered: int, worker_pids: list[int], receiver_pid: int, r: redis.Redis) -> Snapshot:
    return Snapshot(time.monotonic(), delivered, tree_cpu_s(worker_pids), tree_cpu_s([receiver_pid]), redis_counters(r))
