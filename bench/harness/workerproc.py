"""A ``celery worker`` subprocess started the same way for both sides of the comparison."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from tests.support.worker import ROOT, _die_with_parent

__all__ = ["CeleryWorker"]


class CeleryWorker:
    """``celery -A APP worker -P POOL -c N -Q QUEUES -l LEVEL [-E]``, logging to a file.

    The command is the production one (Procfile) for both apps: mingle, gossip and heartbeats
    are left at Celery's defaults. The process is SIGKILLed if the bench dies (PDEATHSIG).
    """

    def __init__(self, app: str, queues: str, env: Mapping[str, str], log_path: Path, *, name: str,
                 pool: str = "threads", concurrency: int = 32, loglevel: str = "INFO", events: bool = False) -> None:
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log_path = log_path
        self.args = [sys.executable, "-m", "celery", "-A", app, "worker", "-P", pool, "-c", str(concurrency),
                     "-Q", queues, "-l", loglevel, "-n", f"{name}@%h"]
        if events:
            self.args.append("-E")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "CeleryWorker":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise RuntimeError with the log's tail if the worker exited."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker {' '.join(self.args[3:])} exited with {self.proc.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (warm shutdown; the bench stops a worker only once its queue is drained), then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
                return
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
