"""Beat's scheduler, with a liveness file: fresh only while beat publishes its due tasks.

The file (``webhooks/liveness.py``) is touched after a tick when a task was published in the
last 10 s without error. ``webhooks.move_due`` is due every second, so a beat that is stuck
or cannot publish to Redis lets its file go stale within seconds.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler

from webhooks import liveness

__all__ = ["Scheduler"]

log = logging.getLogger("workers.beat")

_SENT_WITHIN_S = 10.0


class Scheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's default (file-backed) scheduler that also refreshes beat's liveness file."""

    _last_sent: float | None = None

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        result = super().apply_async(entry, producer, advance, **kwargs)
        self._last_sent = time.monotonic()
        return result

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        if self._last_sent is not None and time.monotonic() - self._last_sent <= _SENT_WITHIN_S:
            try:
                liveness.touch(liveness.beat_file())
            except OSError as exc:
                log.warning("beat: cannot write liveness file: %s", exc)
        return interval
