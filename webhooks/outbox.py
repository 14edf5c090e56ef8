"""Producer outbox: a durable local spool for events published while Redis cannot be reached.

``publish()`` writes the event here (``Outbox.put``) and returns; a flusher re-publishes the
spooled events in order once Redis answers (``Outbox.flush``, run by ``BackgroundFlusher`` in
the producing process and by ``webhooks outbox flush``).

Design, and why:

* Storage is one SQLite file in WAL mode with ``synchronous=FULL``: every ``put`` commit fsyncs
  the WAL, so an event is on disk when ``put`` returns and survives a killed process *and* a
  power cut. (``NORMAL`` would survive a killed process only.) The fsync costs ~1 ms per put,
  paid only while Redis is down.
* ``seq`` is an ``AUTOINCREMENT`` key assigned inside the write transaction, so it is strictly
  increasing across processes and never reused: it is the replay order.
* One connection per ``Outbox`` guarded by a lock serves all its threads; several processes
  share the file through SQLite's own locking with a busy timeout. A process forked after the
  ``Outbox`` was opened gets a fresh connection (a SQLite connection must not cross a fork).
* At most one flusher runs at a time per spool, across threads and processes: ``flush`` holds
  an exclusive ``flock`` on ``<path>.flush-lock`` for its whole run. That is what keeps two
  flushers from sending the same event concurrently or interleaving out of order, and the
  kernel drops the lock when the holder dies, so a crashed flusher never wedges the spool.
  Holding SQLite's write lock instead would block ``put`` for as long as a publish to a dying
  Redis hangs; a lease column would need a lease longer than any publish. ``put`` never takes
  the flush lock.
* Delivery is at least once: a row is deleted only after ``publish`` returned for it, in one
  transaction per batch of up to ``_BATCH`` events, so a crash between publish and delete
  re-sends at most one batch. The consumer dedupes by ``event_id``.

Every storage failure is raised as ``PublishError`` naming the spool path, never carrying a
payload. POSIX only (``fcntl``), like the Celery workers it feeds.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import ConfigurationError, PublishError, ValidationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the module still imports; Outbox() refuses
    fcntl = None  # type: ignore[assignment]

__all__ = ["SpooledEvent", "FlushResult", "Outbox", "BackgroundFlusher"]

log = logging.getLogger(__name__)

_BATCH = 100
_BUSY_TIMEOUT_S = 10.0
_LOCK_POLL_S = 0.05
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    data_json TEXT NOT NULL,
    spooled_at REAL NOT NULL
)
"""
_COLUMNS = "seq, account, event_type, event_id, data_json, spooled_at"


@dataclass(frozen=True)
class SpooledEvent:
    """One event waiting in the outbox; ``seq`` is its replay order."""

    seq: int
    account: str
    event_type: str
    event_id: str
    data_json: str
    spooled_at: float

    @property
    def data(self) -> Any:
        """The event data, decoded from ``data_json``."""
        return json.loads(self.data_json)


@dataclass(frozen=True)
class FlushResult:
    """What one ``Outbox.flush`` did: events sent, events still spooled, the error it stopped on."""

    sent: int
    remaining: int
    error: str | None = None


class Outbox:
    """A bounded, durable, ordered spool of events in one SQLite file.

    Safe to share between threads, and between processes opening the same path.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_events: int = 100_000,
        flush_lock_wait_s: float = 30.0,
    ) -> None:
        """Open (creating if needed, with owner-only permissions) the spool at ``path``.

        ``flush_lock_wait_s`` bounds how long ``flush`` waits for another flusher to finish.
        Raises ConfigurationError for a bad limit or a platform without ``fcntl``, and
        PublishError when the file cannot be created or opened.
        """
        if max_events < 1:
            raise ConfigurationError("WEBHOOKS_OUTBOX_MAX_EVENTS must be at least 1")
        if fcntl is None:
            raise ConfigurationError("the outbox needs a POSIX system (fcntl)")
        self.path = Path(path)
        self.max_events = max_events
        self.flush_lock_wait_s = flush_lock_wait_s
        self._lock_path = self.path.with_name(self.path.name + ".flush-lock")
        self._closed = False
        self._pid = os.getpid()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Spooled events hold chat data: create the file owner-only before SQLite does
            # (its -wal and -shm files copy the database file's permissions).
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise PublishError(f"outbox cannot be created at {self.path}: {exc.strerror}") from exc
        self._conn: sqlite3.Connection = self._connect()

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        with self._mapped("cannot be opened"):
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # shared by our threads under self._lock
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            return conn

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The connection, held under the lock; storage errors become PublishError."""
        if os.getpid() != self._pid:
            # Forked child: the parent's lock may be held and its connection must not be used.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._conn = self._connect()
        with self._lock:
            if self._closed:
                raise PublishError(f"outbox at {self.path} is closed")
            with self._mapped("failed"):
                yield self._conn

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            # sqlite3 messages name the condition ("database is locked", "disk I/O error"),
            # never row contents.
            raise PublishError(f"outbox at {self.path} {what}: {exc}") from exc

    @staticmethod
    @contextmanager
    def _write(conn: sqlite3.Connection) -> Iterator[None]:
        # IMMEDIATE takes the write lock up front, so the count-then-insert in put() cannot
        # race another process past the limit.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- public -----------------------------------------------------------------------------

    def put(self, account: str, event_type: str, event_id: str, data: dict[str, Any]) -> SpooledEvent:
        """Spool one event durably (on disk when this returns) and return it with its ``seq``.

        Raises PublishError when the outbox is full or the spool cannot be written, and
        ValidationError when ``data`` is not JSON-serializable.
        """
        try:
            data_json = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValidationError("event data is not JSON-serializable", {"data": [str(exc)]}) from exc
        spooled_at = time.time()
        with self._db() as conn, self._write(conn):
            (count,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
            if count >= self.max_events:
                raise PublishError(
                    f"outbox full: {count} events spooled at {self.path} "
                    f"(WEBHOOKS_OUTBOX_MAX_EVENTS={self.max_events})"
                )
            cur = conn.execute(
                "INSERT INTO events (account, event_type, event_id, data_json, spooled_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (account, event_type, event_id, data_json, spooled_at),
            )
            seq = cur.lastrowid
        assert seq is not None
        return SpooledEvent(seq, account, event_type, event_id, data_json, spooled_at)

    def pending(self) -> int:
        """Number of events spooled and not yet flushed. Raises PublishError."""
        with self._db() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(count)

    def peek(self, limit: int = 100) -> list[SpooledEvent]:
        """The oldest ``limit`` spooled events, in replay order, left in place. Raises PublishError."""
        with self._db() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [SpooledEvent(*row) for row in rows]

    def flush(self, publish: Callable[[SpooledEvent], object], *, limit: int | None = None) -> FlushResult:
        """Re-publish spooled events in ``seq`` order, deleting each only after ``publish`` returned.

        Stops at the first exception ``publish`` raises: that event and all later ones stay
        spooled and the exception is described in ``FlushResult.error``. Sends at most
        ``limit`` events, and only those spooled before the flush began (so a steady stream of
        new puts cannot keep it running). Waits up to ``flush_lock_wait_s`` for a concurrent
        flusher, then returns with an error saying so. Raises PublishError when the spool
        itself fails.
        """
        with self._flush_lock() as held:
            if not held:
                return FlushResult(
                    0, self.pending(), f"another flusher still holds {self._lock_path}"
                )
            return self._flush_locked(publish, limit)

    def _flush_locked(self, publish: Callable[[SpooledEvent], object], limit: int | None) -> FlushResult:
        with self._db() as conn:
            (high,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        sent = 0
        last = 0
        error: str | None = None
        while error is None and (limit is None or sent < limit):
            want = _BATCH if limit is None else min(_BATCH, limit - sent)
            with self._db() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    (last, high, want),
                ).fetchall()
            if not rows:
                break
            done: list[int] = []
            try:
                for row in rows:
                    ev = SpooledEvent(*row)
                    try:
                        publish(ev)
                    except Exception as exc:
                        error = f"event seq {ev.seq} ({ev.event_id}): {type(exc).__name__}: {exc}"
                        break
                    done.append(ev.seq)
            finally:
                # Also on KeyboardInterrupt and the like: what was sent must not be sent again.
                if done:
                    with self._db() as conn, self._write(conn):
                        conn.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in done])
            sent += len(done)
            last = rows[-1][0]
        return FlushResult(sent, self.pending(), error)

    @contextmanager
    def _flush_lock(self) -> Iterator[bool]:
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise PublishError(f"outbox flush lock {self._lock_path} cannot be opened: {exc.strerror}") from exc
        try:
            # Each call opens its own descriptor, so flock also excludes our other threads.
            deadline = time.monotonic() + self.flush_lock_wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_LOCK_POLL_S)
            yield True
        finally:
            os.close(fd)  # releases the flock

    def close(self) -> None:
        """Close the spool; later calls raise PublishError. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


def _backoff(delay_s: float, interval_s: float, max_interval_s: float, failed: bool) -> float:
    """Next wait of the flusher: back to ``interval_s`` on success, doubled (capped) on failure."""
    if not failed:
        return interval_s
    return min(max(delay_s, interval_s) * 2, max_interval_s)


class BackgroundFlusher:
    """A daemon thread that flushes an outbox while it has events, backing off while publish fails.

    Call ``poke()`` when there is news that Redis answers again (a direct publish just
    succeeded): the thread tries at once instead of waiting out its backoff.
    """

    _STEP = 500  # events per flush call, so stop() is honoured during a long backlog

    def __init__(
        self,
        outbox: Outbox,
        publish: Callable[[SpooledEvent], object],
        *,
        interval_s: float = 1.0,
        max_interval_s: float = 30.0,
    ) -> None:
        """Prepare (not start) a flusher that polls every ``interval_s``, up to ``max_interval_s`` while failing."""
        if interval_s <= 0 or max_interval_s < interval_s:
            raise ConfigurationError("flusher intervals must satisfy 0 < interval_s <= max_interval_s")
        self.outbox = outbox
        self.publish = publish
        self.interval_s = interval_s
        self.max_interval_s = max_interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent); it flushes once at once, then on its schedule."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="webhooks-outbox-flusher", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Wake the thread now."""
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to finish and wait up to ``timeout_s`` for it (a publish in flight is not interrupted)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("outbox flusher still busy after %.1fs; left to finish as a daemon", timeout_s)

    def _run(self) -> None:
        delay = self.interval_s
        while not self._stopping.is_set():
            self._wake.clear()
            failed = False
            more = False
            try:
                if self.outbox.pending():
                    result = self.outbox.flush(self.publish, limit=self._STEP)
                    failed = result.error is not None
                    more = not failed and result.remaining > 0
                    if failed:
                        log.warning("outbox flush stopped (%d left): %s", result.remaining, result.error)
            except Exception:
                failed = True
                log.exception("outbox flush failed")
            delay = _backoff(delay, self.interval_s, self.max_interval_s, failed)
            if not more:
                self._wake.wait(delay)
