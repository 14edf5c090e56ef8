"""Liveness files a supervisor can check: fresh only while the process works.

A worker's heartbeat (``workers/heartbeat.py``) touches ``chat-webhooks-worker-<node>.alive``
every 2 s from its event loop, and only after a Redis round trip succeeded; beat
(``workers/beat.py``) touches ``chat-webhooks-beat.alive`` after each tick that published its
due tasks. A process that is stuck (event loop blocked, SIGSTOPped) or cut off from Redis
stops refreshing its file, so the check fails, not only when the process is gone.

    python -m webhooks.liveness worker [--node celery@host] [--max-age 15] [--json]
    python -m webhooks.liveness beat [--max-age 15] [--json]

Exit 0 healthy, 1 unhealthy, 2 bad usage. Files live in WEBHOOKS_HEALTH_DIR (default: the
system temp directory). Each file records its process id; files of processes no longer
running (a restart in the same container) are ignored.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["health_dir", "worker_file", "beat_file", "touch", "check", "Verdict", "main", "DEFAULT_MAX_AGE_S"]

DEFAULT_MAX_AGE_S = 15.0
"""A refresh is due every 2 s (worker) or 1 s (beat); one Redis call may wait 5 s (socket timeout)."""

_PREFIX = "chat-webhooks-"


def health_dir() -> Path:
    """WEBHOOKS_HEALTH_DIR, or the system temp directory."""
    from .settings import get_settings

    return Path(get_settings().health_dir or tempfile.gettempdir())


def worker_file(nodename: str) -> Path:
    """The liveness file of the worker named ``nodename`` (e.g. ``celery@host``)."""
    return health_dir() / f"{_PREFIX}worker-{re.sub(r'[^A-Za-z0-9@._-]', '_', nodename)}.alive"


def beat_file() -> Path:
    """The liveness file of beat."""
    return health_dir() / f"{_PREFIX}beat.alive"


def touch(path: Path) -> None:
    """Mark ``path``'s process alive now (the file holds this process id)."""
    try:
        if _pid_of(path) == os.getpid():
            os.utime(path)
            return
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"pid": os.getpid()}))
    os.replace(tmp, path)


def _pid_of(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``healthy`` and one sentence saying why."""

    healthy: bool
    reason: str
    age_s: float | None = None
    file: str | None = None


def check(kind: str, *, node: str | None = None, max_age_s: float = DEFAULT_MAX_AGE_S,
          now: float | None = None) -> Verdict:
    """Is the ``kind`` ("worker" or "beat") process alive and working? With no ``node``, every
    worker whose process is running here must be fresh (one worker per container: that one)."""
    now = time.time() if now is None else now
    if kind == "beat":
        candidates = [beat_file()]
    elif node:
        candidates = [worker_file(node)]
    else:
        candidates = sorted(health_dir().glob(f"{_PREFIX}worker-*.alive"))
    live = [p for p in candidates if p.exists() and _running(_pid_of(p))]
    if not live:
        return Verdict(False, f"no running {kind} has a liveness file in {health_dir()}")
    for p in live:
        age = now - p.stat().st_mtime
        if age > max_age_s:
            return Verdict(False, f"{kind} (pid {_pid_of(p)}) last proved its loop and Redis alive "
                                  f"{age:.0f}s ago, more than {max_age_s:g}s", age, str(p))
    age = max(now - p.stat().st_mtime for p in live)
    return Verdict(True, f"{kind} alive: refreshed {age:.1f}s ago", age, str(live[0]))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: exit 0 healthy, 1 unhealthy, 2 bad usage."""
    parser = argparse.ArgumentParser(
        prog="python -m webhooks.liveness",
        description="Liveness probe for a chat-webhooks worker or beat (Docker HEALTHCHECK, Kubernetes "
                    "livenessProbe): fails when the process is gone, stuck, or cut off from Redis.")
    parser.add_argument("kind", choices=("worker", "beat"), help="which process to check")
    parser.add_argument("--node", help="the worker's node name (celery@host); default: every worker running here")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_S, metavar="S",
                        help=f"oldest acceptable refresh, seconds (default {DEFAULT_MAX_AGE_S:g})")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    try:
        verdict = check(args.kind, node=args.node, max_age_s=args.max_age)
    except Exception as exc:  # noqa: BLE001 - a probe answers, it does not crash
        verdict = Verdict(False, f"the check itself failed: {exc}")
    if args.json:
        print(json.dumps(asdict(verdict)))
    elif verdict.healthy:
        print(verdict.reason)
    else:
        print(verdict.reason, file=sys.stderr)
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
