"""Start and stop a real ``celery -A workers worker`` process for tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

__all__ = ["Worker", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout_s: float = 15.0, interval_s: float = 0.05, message: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is truthy; AssertionError naming ``message`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def _load_prctl():  # type: ignore[no-untyped-def]
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved here, in the parent: the child between fork and exec only calls it.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be SIGKILLed when the process that started us dies.

    A test or bench killed from outside (a timeout's SIGTERM) runs no cleanup; its worker
    would live on, consume the shared queues with another test CA, and fail others' deliveries.
    """
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class Worker:
    """A worker subprocess (threads pool, both queues, embedded beat), logging to a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path, *, concurrency: int = 8, pool: str = "threads",
                 beat: bool = True, queues: str = "deliveries,retries", extra_args: tuple[str, ...] = ()) -> None:
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        # workers/config.py sets worker_pool='threads', and Celery cannot tell an explicit
        # `-P prefork` from its default: 'processes' is prefork's other name.
        pool = "processes" if pool == "prefork" else pool
        self.log_path = log_path
        self.args = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-P", pool, "-c", str(concurrency),
                     "-Q", queues, "--without-gossip", "--without-mingle", "-l", "INFO",
                     "-n", f"test-{os.getpid()}-{id(self)}@%h"]
        if beat:
            self.args += ["-B", "-s", str(log_path.with_suffix(".beat"))]
        self.args += list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> "Worker":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        wait_until(lambda: b" ready." in self.log_path.read_bytes() or self.proc.poll() is not None, timeout_s,
                   message="the worker to be ready")
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "Worker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
