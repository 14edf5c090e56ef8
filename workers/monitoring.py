"""Sentry for the worker, and a report when a delivery is dead-lettered."""
from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init, worker_init

from webhooks.sentry import init_sentry
from webhooks.settings import get_settings

log = logging.getLogger("webhooks.monitoring")


@worker_init.connect
def _init_sentry(**_: Any) -> None:
    if init_sentry(get_settings().sentry_dsn, celery=True):
        log.info("Sentry enabled")


@worker_process_init.connect
def _init_sentry_child(**_: Any) -> None:
    # Prefork children need their own client; threads share the parent's.
    from webhooks import connection

    connection.reset()
    init_sentry(get_settings().sentry_dsn, celery=True)
