"""A ``redis-server`` of a test's own: shipped config (AOF), a free loopback port, its own
directory; killed by pid. For tests that kill or restart Redis, or must be the only consumers
of their queues."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from pathlib import Path

import redis

from .worker import ROOT, wait_until

__all__ = ["RedisServer", "free_port", "REDIS_SERVER", "REDIS_CONF"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CONF = ROOT / "config" / "redis.conf"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server config/redis.conf`` on its own port and directory; killed by pid."""

    def __init__(self, directory: Path, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.args = args
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self, timeout_s: float = 20.0) -> "RedisServer":
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(REDIS_CONF), "--port", str(self.port), "--dir", str(self.dir),
             "--daemonize", "no", "--bind", "127.0.0.1", *self.args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        wait_until(lambda: self.proc.poll() is not None or self._answers(), timeout_s, 0.05,
                   message=f"redis-server on port {self.port} to answer (it loads its AOF)")
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()[-2000:]}")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync; what survives is what the AOF already has."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> "RedisServer":
        """Start again on the same port and directory (it replays the AOF)."""
        return self.start()

    def stop(self) -> None:
        self.kill()
