"""Sentry for the worker, and a report when a delivery is dead-lettered."""
from __future__ import annotations

import logging
from typing import Any

from celery.signals import after_setup_logger, worker_init, worker_process_init

from webhooks import records
from webhooks.sentry import init_sentry
from webhooks.settings import get_settings

log = logging.getLogger("webhooks.monitoring")


# Celery logs two INFO lines per task ("received", "succeeded"): with -l INFO that is two
# formatted lines per attempt on top of ours ("delivery … attempt n: 200 in 12 ms -> delivered"),
# which says more. Theirs are off; set these loggers to INFO in your logging setup to see them.
CELERY_PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


@after_setup_logger.connect
def _quiet_per_task_lines(**_: Any) -> None:
    # Read once when Celery builds its task strategies, which happens after this signal.
    for name in CELERY_PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


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


def report_dead_letter(delivery_id: str, reason: str | None) -> None:
    """One Sentry warning per dead letter, with ids only: no URL, payload, response or error text.

    Grouped by reason (not by delivery) so a failing endpoint makes one issue, not thousands.
    Never raises: monitoring must not break the bookkeeping of a failure.
    """
    try:
        import sentry_sdk

        if not sentry_sdk.get_client().is_active():
            return
        rec = records.load(delivery_id) or {}  # Sentry on: one read, off the delivery's hot path
        reason = reason or rec.get("reason") or "failed"
        tags = {"account": rec.get("account"), "subscription_id": rec.get("sub"), "event_id": rec.get("evt"),
                "event_type": rec.get("type"), "delivery_id": delivery_id, "reason": reason}
        sentry_sdk.capture_message(
            f"delivery {delivery_id} dead-lettered ({reason}) after {rec.get('attempts') or 0} attempts: "
            f"subscription {rec.get('sub')} of account {rec.get('account')}",
            level="warning",
            tags={k: v for k, v in tags.items() if v},
            fingerprint=["webhooks.dead-letter", reason],
        )
    except Exception:  # noqa: BLE001 - best effort
        log.debug("could not report dead letter %s to Sentry", delivery_id, exc_info=True)
