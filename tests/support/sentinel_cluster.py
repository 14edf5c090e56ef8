"""A Redis Sentinel deployment of a test's own on loopback: a primary, a replica and three
sentinels (``redis-server --sentinel`` with generated config files), each on a free port.
Quacks like ``RedisServer`` where the fault ``Stack`` needs it (``url``, ``client()``,
``start()``, ``stop()``)."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from .redis_server import REDIS_CONF, REDIS_SERVER, free_port
from .worker import wait_until

__all__ = ["SentinelCluster", "MASTER"]

MASTER = "mymaster"


class SentinelCluster:
    """Primary + replica (config/redis.conf, AOF) + three sentinels (quorum 2)."""

    def __init__(self, directory: Path, *, down_after_ms: int = 2000) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.down_after_ms = down_after_ms
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"sentinel://{hosts}/0?master={MASTER}"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        self.procs[name] = subprocess.Popen([REDIS_SERVER, *args], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        log.close()

    def _data(self, name: str, port: int, *extra: str) -> None:
        d = self.dir / name
        d.mkdir(exist_ok=True)
        # A copy: sentinels send CONFIG REWRITE to the nodes they reconfigure (never to the shipped file).
        conf = d / "redis.conf"
        conf.write_text(REDIS_CONF.read_text())
        self._spawn(name, [str(conf), "--port", str(port), "--dir", str(d), "--daemonize", "no",
                           "--bind", "127.0.0.1", *extra])

    def start(self) -> "SentinelCluster":
        primary, replica = self.data_ports
        self._data("redis-a", primary)
        self._data("redis-b", replica, "--replicaof", "127.0.0.1", str(primary))
        for i, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
            self._spawn(f"sentinel{i}", [str(conf), "--sentinel"])
        wait_until(self._ready, 60, 0.2, message="the replica in sync and every sentinel seeing it and the others")
        return self

    def _ready(self) -> bool:
        try:
            for port in self.sentinel_ports:
                s = redis.Redis(port=port, socket_timeout=1)
                info = s.sentinel_master(MASTER)
                if info["num-slaves"] < 1 or info["num-other-sentinels"] < 2:
                    return False
            return redis.Redis(port=self.data_ports[1]).info("replication")["master_link_status"] == "up"
        except (redis.RedisError, KeyError):
            return False

    def sentinel(self) -> Sentinel:
        return Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=1)

    def primary_port(self) -> int:
        return int(self.sentinel().discover_master(MASTER)[1])

    def client(self) -> redis.Redis:
        """A client of the current primary (asked of the sentinels on each new connection)."""
        return self.sentinel().master_for(MASTER, socket_timeout=5, socket_connect_timeout=1)

    def _named(self) -> set[int]:
        return {int(redis.Redis(port=p, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER)[1])
                for p in self.sentinel_ports}

    def failover(self, timeout_s: float = 60.0, pause_writes_ms: int | None = None) -> int:
        """``SENTINEL FAILOVER``: promote the replica; returns the new primary's port once every
        sentinel names it and the old primary follows it. With ``pause_writes_ms``, writes on
        the primary are paused first (``CLIENT PAUSE ms WRITE``), the planned-switch recipe."""
        old = self.primary_port()
        if pause_writes_ms is not None:
            redis.Redis(port=old, socket_timeout=5).execute_command("CLIENT", "PAUSE", pause_writes_ms, "WRITE")
        redis.Redis(port=self.sentinel_ports[0], socket_timeout=5).execute_command("SENTINEL", "FAILOVER", MASTER)

        def moved() -> bool:
            try:
                names = self._named()
                return names != {old} and len(names) == 1 and \
                    redis.Redis(port=old, socket_timeout=1).info("replication")["role"] == "slave"
            except redis.RedisError:
                return False

        wait_until(moved, timeout_s, 0.1, message="the failover to complete")
        return self.primary_port()

    def kill_primary(self, timeout_s: float = 60.0) -> int:
        """SIGKILL the primary; returns the new primary's port once every sentinel names it."""
        old = self.primary_port()
        name = "redis-a" if old == self.data_ports[0] else "redis-b"
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

        def moved() -> bool:
            try:
                names = self._named()
                return names != {old} and len(names) == 1
            except redis.RedisError:
                return False

        wait_until(moved, timeout_s, 0.1, message="the sentinels to promote the replica")
        return self.primary_port()

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)

    kill = stop
