"""The Celery app: ``celery -A workers worker -P threads -c 32 -Q deliveries,retries``."""
from __future__ import annotations

import sys

from celery import Celery

from webhooks.errors import ConfigurationError
from webhooks.policy import RetrySchedule, check_schedule_fits
from webhooks.settings import get_settings

from .config import celery_config

__all__ = ["app"]


def _make_app() -> Celery:
    s = get_settings()
    # Refuse to start when a retry countdown could outlive the visibility timeout.
    check_schedule_fits(
        RetrySchedule(tuple(s.retry_schedule_s), jitter=s.retry_jitter),
        s.max_countdown_s,
        s.visibility_timeout_s,
        attempt_timeout_s=s.total_timeout_s,
    )
    app = Celery("webhooks")
    app.conf.update(celery_config(s))
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
