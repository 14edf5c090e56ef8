"""The total deadline of a delivery attempt, whatever the server drips.

urllib3's timeouts are per socket operation: a server that sends a byte a second (status
line, headers, body, chunk sizes, endless ``100 Continue`` lines, TLS handshake records) would
hold a worker for ever. ``WATCHDOG.start(deadline)`` returns a ``Guard``; connections attach
their sockets to the guard of the send() running on their thread (``CURRENT.guard``), and when
the deadline passes the watchdog shuts them down, so the blocked read returns at once.

The guard owns a duplicate of each attached descriptor, taken at attach time and closed only
by ``finish``: whatever the HTTP layer does with its own socket object meanwhile (http.client
sets ``conn.sock = None`` and "closes" it on ``Connection: close`` while the body is still read
through ``resp.fp``), the duplicate refers to the same connection and its ``shutdown`` cuts
it. The watchdog shuts duplicates down only under its lock and only while the guard is live;
``finish`` takes them out of the guard under that lock before closing them, so a descriptor
number is never reused under the watchdog's feet.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

__all__ = ["Guard", "Watchdog", "WATCHDOG", "CURRENT"]


class Guard:
    """The deadline of one send() and duplicates of the sockets it uses (its own, closed by
    ``Watchdog.finish``); shut down when the deadline passes."""

    __slots__ = ("deadline", "socks", "fired", "done")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.socks: list[socket.socket] = []
        self.fired = False
        self.done = False


class Watchdog:
    """One daemon thread for the process, with a heap of deadlines.

    At a guard's deadline the watchdog shuts its sockets down (shutdown(2) on the guard's dup
    of the connection's fd, so the blocked read returns at once), under the lock and only
    while the guard is live: a dup is closed only once ``finish`` took it out of the guard.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, deadline: float) -> Guard:
        guard = Guard(deadline)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._seq), guard))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhooks-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
        return guard

    def attach(self, guard: Guard, sock: socket.socket) -> None:
        """Watch ``sock`` (an open socket, plain or TLS) for ``guard``: the guard keeps a
        duplicate of its descriptor until ``finish``. Shut down at once if already fired."""
        try:
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return  # closed already: nothing left to watch
        with self._cond:
            if not guard.done:
                guard.socks.append(dup)
                if guard.fired:
                    self._shutdown(dup)
                return
        dup.close()

    def finish(self, guard: Guard) -> None:
        """The send() is over: stop watching and close the guard's duplicates."""
        with self._cond:
            guard.done = True
            socks, guard.socks = guard.socks, []
        for sock in socks:  # out of the watchdog's reach now: closing cannot race a shutdown
            sock.close()

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, guard = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                guard.fired = True
                for sock in guard.socks:
                    self._shutdown(sock)


WATCHDOG = Watchdog()
CURRENT = threading.local()  # .guard: the Guard of the send() running on this thread
