"""The total deadline of a delivery attempt, whatever the server drips.

urllib3's timeouts are per socket operation: a server that sends a byte a second (status
line, headers or body) would hold a worker for ever. ``WATCHDOG.start(deadline)`` returns a
``Guard``; connections attach their sockets to the guard of the send() running on their
thread (``CURRENT.guard``), and when the deadline passes the watchdog shuts them down, so
the blocked read returns at once.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

__all__ = ["Guard", "Watchdog", "WATCHDOG", "CURRENT"]


class Guard:
    """The deadline of one send() and the sockets it uses; shut down when the deadline passes."""

    __slots__ = ("deadline", "socks", "fired", "done")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.socks: list[socket.socket] = []
        self.fired = False
        self.done = False


class Watchdog:
    """One daemon thread for the process, with a heap of deadlines.

    urllib3's timeouts are per socket operation, so a server dripping a byte a second (status
    line, headers or body) would hold a caller forever. At a guard's deadline the watchdog shuts
    its sockets down (shutdown(2) on a dup of the connection's fd, so the blocked read returns
    at once). Watched sockets are closed and shut down only under the lock: no fd can be reused
    under our feet.
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
        with self._cond:
            if guard.done or sock in guard.socks:
                return
            guard.socks.append(sock)
            if guard.fired:
                self._shutdown(sock)

    def finish(self, guard: Guard) -> None:
        with self._cond:
            guard.done = True
            guard.socks = []

    def close_sock(self, sock: socket.socket) -> None:
        with self._cond:
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
