"""A private ``redis-server`` for the bench: the repository's config (AOF, everysec), a free
loopback port, a temporary directory; SIGKILLed if the bench dies. Its counters (CPU, commands,
reads) are then the bench's alone, and its databases are the bench's to flush."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from tests.support.redis_server import REDIS_CONF, REDIS_SERVER, free_port
from tests.support.worker import _die_with_parent, wait_until

__all__ = ["PrivateRedis"]


class PrivateRedis:
    """``redis-server config/redis.conf --port <free> --dir <directory>``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_connect_timeout=2, socket_timeout=30)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self) -> "PrivateRedis":
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, str(REDIS_CONF), "--port", str(self.port), "--dir", str(self.dir), "--daemonize", "no",
                 "--bind", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        wait_until(lambda: self.proc.poll() is not None or self._answers(), 20, 0.05,
                   message=f"the bench's redis-server on port {self.port} to answer")
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
        return self

    def version(self) -> str:
        return str(self.client().info("server")["redis_version"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
