"""A whole stack on real processes for fault tests and the chaos soak.

``Stack`` owns its own ``redis-server`` (the shipped ``config/redis.conf``: AOF, everysec,
on a free port and a temporary directory), real worker processes, and an in-process HTTPS
``Endpoint`` that can go down and come back on the same port. The producer is this process:
entering the stack points ``webhooks`` at the stack's Redis (and restores the environment
on exit). ``Stack.tally`` compares what was published with what arrived:

    published (acknowledged) ⊆ enqueued;   enqueued == delivered unique ∪ dead letters

and counts duplicates (the same ``webhook-id`` answered 2xx more than once). Nothing here
waits with a bare sleep: every wait has a condition and a deadline.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import redis

from tests.support.receiver import Receiver, Recorded, Reply
from tests.support.redis_server import RedisServer, free_port
from tests.support.tls import TestCA
from tests.support.worker import Worker, wait_until
from webhooks.secretbox import new_key

__all__ = ["RedisServer", "Endpoint", "Stack", "Tally", "PublishLog", "Beat", "free_port", "wait_until", "FAULT_ENV"]


# Every process of a fault stack shares these (the visibility timeout above all).
FAULT_ENV: dict[str, str] = {
    "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8,::1/128",
    "WEBHOOKS_ENCRYPTION_KEY": new_key(),  # secrets are encrypted at rest by default
    "WEBHOOKS_TOTAL_TIMEOUT_S": "5",
    "WEBHOOKS_CONNECT_TIMEOUT_S": "2",
    "WEBHOOKS_PUBLISH_TIMEOUT_S": "2",
    "WEBHOOKS_MAX_COUNTDOWN_S": "4",
    "WEBHOOKS_VISIBILITY_TIMEOUT_S": "3600",
    # Two endpoints take every delivery: let the whole pool reach them at once.
    "WEBHOOKS_ENDPOINT_CONCURRENCY": "64",
    # A short cool-down so a tripped breaker costs seconds, not the default 30 s.
    "WEBHOOKS_BREAKER_COOLDOWN_S": "2",
    # A task message lost in kombu's BRPOP-then-record window (kombu #305) is found and
    # re-sent by the reconciler after this long without progress (default: visibility + 10 s).
    "WEBHOOKS_RECONCILE_AFTER_S": "25",
}


class _RecordingReceiver(Receiver):
    """A Receiver that also counts, per ``webhook-id``, the POSTs it answered 2xx."""

    def __init__(self, *args: Any, on_answer: Callable[[str, Reply], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_answer = on_answer
        self._current = threading.local()

    def _record(self, recorded: Recorded) -> None:
        # Not kept in memory (2,000+ requests per run): only the id, for the reply below.
        self._current.webhook_id = recorded.headers.get("webhook-id", "")

    def _next_reply(self, path: str) -> Reply:
        reply = super()._next_reply(path)
        self._on_answer(getattr(self._current, "webhook_id", ""), reply)
        return reply


class Endpoint:
    """An HTTPS endpoint on a fixed port: up (200), ``down()`` (connection refused),
    ``set_mode(reply)`` (500s, hangs...). Counts 2xx answers per ``webhook-id``."""

    def __init__(self, ca: TestCA) -> None:
        self.ca = ca
        self.port = free_port()
        self._lock = threading.Lock()
        self.ok: Counter[str] = Counter()
        self.answered = 0
        self._default = Reply(status=200)
        self._receiver: _RecordingReceiver | None = None

    def _count(self, webhook_id: str, reply: Reply) -> None:
        with self._lock:
            self.answered += 1
            if reply.mode == "normal" and 200 <= reply.status < 300:
                self.ok[webhook_id] += 1

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        if self._receiver is None:
            r = _RecordingReceiver(self.ca, port=self.port, on_answer=self._count)
            r.set_default(self._default)
            self._receiver = r.start()

    def down(self) -> None:
        """Stop listening: new connections are refused, open ones are closed."""
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None

    def set_mode(self, reply: Reply) -> None:
        self._default = reply
        if self._receiver is not None:
            self._receiver.set_default(reply)

    def delivered(self) -> int:
        with self._lock:
            return len(self.ok)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.ok)


@dataclass
class PublishLog:
    """What the producer was told: acknowledged events (enqueued or spooled) and failures."""

    acknowledged: set[str] = field(default_factory=set)
    spooled: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, account: str, event_id: str, event_type: str = "message.sent") -> bool:
        """Publish one event with our own id; True when acknowledged, False on PublishError."""
        import webhooks
        from webhooks import events

        try:
            ev = webhooks.publish(account, event_type, events.sample(event_type), event_id=event_id)
        except webhooks.PublishError:
            with self.lock:
                self.failed.add(event_id)
            return False
        with self.lock:
            self.acknowledged.add(event_id)
            if ev.spooled:
                self.spooled.add(event_id)
        return True


@dataclass
class Tally:
    """The comparison a fault test asserts on (counts are deliveries)."""

    published: int  # deliveries the producer's acknowledged events should have made
    enqueued: int
    delivered_unique: int
    duplicates: int
    dead: int
    lost: int  # enqueued or owed deliveries neither delivered nor dead-lettered
    unexpected: int  # delivered/dead ids that were never enqueued
    half_enqueued_events: int  # events with some but not all of their deliveries
    failed_publishes_enqueued: int  # events whose publish raised, found enqueued anyway
    ledger: dict[str, int]
    seconds: float = 0.0
    name: str = ""

    def row(self) -> str:
        return (f"{self.name:<34} published {self.published:>5}  delivered {self.delivered_unique:>5}  "
                f"dup {self.duplicates:>3}  dead {self.dead:>4}  lost {self.lost}  "
                f"({self.seconds:.1f}s)")


class Stack:
    """Redis + workers + endpoint + this process as producer. Use as a context manager."""

    def __init__(self, tmp: Path, ca: TestCA, env: Mapping[str, str] | None = None, *, name: str = "",
                 redis_server: Any = None) -> None:
        self.tmp = tmp
        self.name = name
        # Our own redis-server, or anything shaped like it (tests/support/sentinel_cluster.py).
        self.redis = redis_server if redis_server is not None else RedisServer(tmp / "redis")
        self.endpoint = Endpoint(ca)
        self.env: dict[str, str] = {**FAULT_ENV, **(env or {}), "WEBHOOKS_CA_BUNDLE": ca.ca_pem_path,
                                    "WEBHOOKS_HEALTH_DIR": str(tmp / "health")}
        (tmp / "health").mkdir(parents=True, exist_ok=True)
        self.workers: list[Worker] = []
        self.beats: list[Beat] = []
        self.started = time.monotonic()
        self._saved_env: dict[str, str | None] = {}
        self.log = PublishLog()

    # lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "Stack":
        try:
            self.redis.start()
            self.env["WEBHOOKS_REDIS_URL"] = self.redis.url
            self._configure_producer()
            self.endpoint.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _configure_producer(self) -> None:
        from webhooks.settings import reload_settings

        for k, v in self.env.items():
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ[k] = v
        reload_settings()

    def close(self) -> None:
        from webhooks import outboxing
        from webhooks.settings import reload_settings

        for w in self.workers:
            try:
                kill_worker(w)
            except Exception:  # noqa: BLE001 - keep cleaning up
                pass
        for b in self.beats:
            try:
                b.stop()
            except Exception:  # noqa: BLE001 - keep cleaning up
                pass
        self.endpoint.down()
        outboxing.stop()
        self.redis.stop()
        for k, old in self._saved_env.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old
        self._saved_env.clear()
        reload_settings()

    def start_worker(self, *, pool: str = "threads", concurrency: int = 16, beat: bool = True,
                     env: Mapping[str, str] | None = None) -> Worker:
        n = len(self.workers)
        w = Worker({**self.env, **(env or {})}, self.tmp / f"worker{n}.log", concurrency=concurrency, pool=pool,
                   beat=beat)
        self.workers.append(w)
        return w.start(timeout_s=60)

    def start_beat(self) -> Beat:
        b = Beat(self.env, self.tmp / f"beat{len(self.beats)}.log")
        self.beats.append(b)
        return b.start()

    # data --------------------------------------------------------------------------------
    def subscribe(self, account: str, paths: tuple[str, ...] = ("/a", "/b"), retry_schedule: str = "0.5,1,2,4") -> list[Any]:
        import webhooks

        return [webhooks.subscriptions.create(account, self.endpoint.url(p), ["message.sent"],
                                              retry_schedule=retry_schedule) for p in paths]

    def publish(self, account: str, n_events: int, prefix: str = "e") -> None:
        for i in range(n_events):
            self.log.publish(account, f"evt_{prefix}{i}")

    def enqueued(self, account: str) -> dict[str, tuple[str, str]]:
        """Every delivery enqueued for ``account``: id -> (event id, subscription id)."""
        from webhooks.keys import K

        r = self.redis.client()
        ids = [i.decode() for i in r.zrange(K.deliveries(account), 0, -1)]
        pipe = r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(K.delivery(i), "evt", "sub")
        out = {}
        for i, (evt, sub) in zip(ids, pipe.execute()):
            out[i] = (evt.decode() if evt else "", sub.decode() if sub else "")
        return out

    def wait_settled(self, account: str, expected: int, timeout_s: float) -> dict[str, int]:
        """Wait until the ledger has ``expected`` deliveries and none pending; return its totals."""
        from webhooks import ledger

        last: dict[str, Any] = {}

        def settled() -> bool:
            try:
                last.update(ledger.counts(account)["total"])
            except redis.RedisError:
                return False
            return last["enqueued"] >= expected and last["pending"] == 0

        try:
            wait_until(settled, timeout_s, 0.5, message=f"the ledger to settle at {expected} deliveries")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; ledger {last}; endpoint 2xx {self.endpoint.delivered()}") from None
        return dict(last)

    def tally(self, account: str, subscriptions: int = 2) -> Tally:
        from webhooks import deadletters, ledger

        enq = self.enqueued(account)
        ok = self.endpoint.snapshot()
        dead = {e["delivery_id"] for e in deadletters.list_dead(account, limit=None)}
        per_event: Counter[str] = Counter(evt for evt, _ in enq.values())
        owed = {e: subscriptions for e in self.log.acknowledged}
        missing_at_publish = sum(max(0, n - per_event.get(e, 0)) for e, n in owed.items())
        enq_ids = set(enq)
        got = set(ok) | dead
        return Tally(
            published=subscriptions * len(self.log.acknowledged),
            enqueued=len(enq),
            delivered_unique=len(set(ok) & enq_ids),
            duplicates=sum(c - 1 for i, c in ok.items() if i in enq_ids),
            dead=len(dead & enq_ids),
            lost=len(enq_ids - got) + missing_at_publish,
            unexpected=len(got - enq_ids),
            half_enqueued_events=sum(1 for n in per_event.values() if n != subscriptions),
            failed_publishes_enqueued=sum(1 for e in self.log.failed if per_event.get(e)),
            ledger=ledger.counts(account)["total"],
            seconds=time.monotonic() - self.started,
            name=self.name,
        )


class Beat:
    """A real ``celery -A workers beat`` process (its own schedule file), logging to a file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        import sys

        from tests.support.worker import ROOT

        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.log_path = log_path
        self.args = [sys.executable, "-m", "celery", "-A", "workers", "beat", "-l", "INFO",
                     "-s", str(log_path.with_suffix(".schedule"))]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Beat":
        from tests.support.worker import ROOT, _die_with_parent

        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        wait_until(lambda: b"Sending due task" in self.log_path.read_bytes() or self.proc.poll() is not None, 60,
                   0.1, message="beat to send its first task")
        if self.proc.poll() is not None:
            raise RuntimeError(f"beat exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        if self.proc is not None:
            self._log.close()


def kill_worker(w: Worker, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the worker's whole process group (main process, pool children, beat)."""
    if w.proc is not None and w.proc.poll() is None:
        try:
            os.killpg(w.proc.pid, sig)
        except ProcessLookupError:
            pass
        w.proc.wait(15)
    if w.proc is not None:
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)  # stragglers: the beat child, pool children
        except ProcessLookupError:
            pass
    try:
        w._log.close()
    except AttributeError:
        pass


def after(seconds: float, action: Callable[[], None]) -> threading.Timer:
    """Run ``action`` once after a deliberate fault duration (an outage of N seconds)."""
    t = threading.Timer(seconds, action)
    t.daemon = True
    t.start()
    return t


def paced(n: int, per_s: float, stop: threading.Event | None = None) -> Iterator[int]:
    """Yield 0..n-1 at ``per_s`` a second (a steady producer), early out when ``stop`` is set."""
    start = time.monotonic()
    ev = stop or threading.Event()
    for i in range(n):
        due = start + i / per_s
        wait = due - time.monotonic()
        if wait > 0 and ev.wait(wait):
            return
        yield i


def assert_nothing_lost(t: Tally, *, dead: int | None = 0) -> None:
    """Every acknowledged publish was enqueued whole, and every enqueued delivery was either
    delivered (a 2xx seen by the endpoint) or dead-lettered; the ledger agrees."""
    assert t.lost == 0, f"{t.lost} deliveries lost: {t}"
    assert t.unexpected == 0, f"{t.unexpected} deliveries arrived that were never enqueued: {t}"
    assert t.half_enqueued_events == 0, f"{t.half_enqueued_events} events half-enqueued: {t}"
    assert t.enqueued >= t.published > 0, t
    assert t.delivered_unique + t.dead >= t.enqueued, t
    assert t.ledger["pending"] == 0 and t.ledger["enqueued"] == t.enqueued, t
    assert t.ledger["delivered"] + t.ledger["dead"] == t.enqueued, t
    if dead is not None:
        assert t.dead == dead, t
