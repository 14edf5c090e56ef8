"""The Celery app: ``celery -A workers worker`` (threads pool, both queues: workers/config.py)."""
from __future__ import annotations

import sys

from celery import Celery

from webhooks.errors import ConfigurationError
from webhooks.settings import get_settings

from .config import celery_config
from .heartbeat import Heartbeat
from .transport import ClaimOnTake

__all__ = ["app"]


def _make_app() -> Celery:
    # get_settings() refuses a visibility timeout that leaves a live worker's heartbeat no margin
    # (webhooks/recovery.py). Countdowns may be longer than it: the heartbeat keeps them.
    s = get_settings()
    app = Celery("webhooks")
    app.conf.update(celery_config(s))
    # Re-scores what this worker holds so that only a dead worker's messages are handed out.
    app.steps["consumer"].add(Heartbeat)
    # Claims a delivery in the round trip that records its message as taken (workers/transport.py).
    app.steps["consumer"].add(ClaimOnTake)
    return app


try:
    app = _make_app()
except ConfigurationError as exc:
    # One sentence naming the setting, not a traceback through Celery's app loader.
    sys.stderr.write(f"error: {exc}\n")
    raise SystemExit(2) from None

from . import tasks  # noqa: E402,F401  (registers the tasks)
from . import monitoring  # noqa: E402,F401  (Sentry, signals)
from . import checks  # noqa: E402,F401  (start-up warnings: plain-text secrets)
