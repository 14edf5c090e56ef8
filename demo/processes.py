"""Child processes of the demo: each in its own process group, so one kill ends it and its
children (the worker's embedded beat), whatever happened to the demo in between."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["ROOT", "Child", "Worker", "wait_until", "DemoError"]

ROOT = Path(__file__).resolve().parents[1]


class DemoError(Exception):
    """A step of the demo could not be done; the message says which and why."""


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``predicate`` until it is truthy; raise DemoError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


class Child:
    """A subprocess in its own session (process group), output appended to ``log_path``."""

    def __init__(self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Child":
        """Start the process; returns self."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n_chars: int = 3000) -> str:
        """The end of the process's log."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the process, wait up to ``grace_s``, then SIGKILL its whole group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group: children outlive their parent otherwise
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


class Worker(Child):
    """``celery -A workers worker`` (its production shape: threads pool, both queues) with embedded beat."""

    def __init__(self, env: Mapping[str, str], run_dir: Path, name: str) -> None:
        args = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-B", "-s", str(run_dir / "beat-schedule"),
                "--without-gossip", "--without-mingle", "-l", "INFO", "-n", f"{name}@%h"]
        pythonpath = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        super().__init__(args, run_dir / "worker.log", {**env, "PYTHONPATH": pythonpath})

    def start_and_wait(self, timeout_s: float = 60.0) -> "Worker":
        """Start the worker and return once it logs that it is ready; DemoError if it exits."""
        self.start()
        wait_until(lambda: " ready." in self.log_tail(100_000) or not self.running(), timeout_s, "the worker to be ready")
        if not self.running():
            raise DemoError(f"the worker exited at start:\n{self.log_tail()}")
        return self
