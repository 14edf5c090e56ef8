"""Thin tasks: ids in, Outcome out, translated to Celery's return / retry / failure."""
from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from celery.signals import task_failure
from kombu.exceptions import OperationalError

from webhooks import deadletters, delivery, metrics, mover
from webhooks.enqueue import RETRIES_QUEUE
from webhooks.errors import PermanentDeliveryError, TransientDeliveryError

from . import app, monitoring, transport

log = logging.getLogger("webhooks.tasks")

# Redis unreachable (restart, failover, network): not the delivery's fault, and nothing about it
# can be written down. Failing the task would ack its message and lose the delivery.
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, OperationalError)


class DeadLettered(PermanentDeliveryError):
    """The attempt ended the delivery and ``settle`` wrote its dead letter (with ``reason``)."""

    def __init__(self, message: str, *, reason: str | None = None, **context: Any) -> None:
        # reason has a default: Celery pickles the exception (cls(*args), then its __dict__)
        super().__init__(message, kind="dead_lettered", **context)
        self.reason = reason


class DeliveryTask(Task):  # type: ignore[misc]
    """A task whose autoretry countdown comes from our retry policy.

    ``autoretry_for`` catches TransientDeliveryError; the error carries the delay our
    schedule chose (jitter that only adds, Retry-After honoured), which replaces
    Celery's exponential countdown. Retries go to their own queue.
    """

    autoretry_for = (TransientDeliveryError,)
    # A dead letter is an expected outcome: Celery logs it without a traceback and Sentry's Celery
    # integration skips it; monitoring.report_dead_letter sends one warning with ids instead.
    throws = (PermanentDeliveryError,)
    retry_backoff = True
    # Our schedule decides when to give up (policy.next_delay -> None -> dead letter).
    max_retries = None
    acks_late = True
    # task_retry_on_worker_lost re-sends a delivery whose pool child died with this countdown
    # (Celery's default is 180 s, held unacked in worker RAM, past a short visibility timeout).
    default_retry_delay = 1
    typing = False

    def retry(self, args: Any = None, kwargs: Any = None, exc: BaseException | None = None, throw: bool = True,
              eta: Any = None, countdown: float | None = None, max_retries: int | None = None, **options: Any) -> Any:
        if isinstance(exc, TransientDeliveryError) and exc.retry_after_s is not None:
            countdown = exc.retry_after_s
        options.setdefault("queue", RETRIES_QUEUE)
        try:
            return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta,
                                 countdown=countdown, max_retries=max_retries, **options)
        except Reject as rejected:
            # Celery turns a retry it could not publish into Reject(requeue=False): the message
            # would be dropped and the delivery left "retrying" for ever. Requeue it instead.
            if isinstance(rejected.reason, _REDIS_DOWN):
                raise Reject(rejected.reason, requeue=True) from None
            raise

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        _dead_letter(exc, args)


def _dead_letter(exc: BaseException | None, args: Any) -> None:
    if not args:
        return
    if isinstance(exc, DeadLettered):
        # The attempt's settle wrote this dead letter, with its reason; only report it.
        monitoring.report_dead_letter(str(args[0]), exc.reason)
        return
    try:  # a failure outside the attempt (a killed pool child, an unexpected error)
        wrote = deadletters.record(str(args[0]), type(exc).__name__ if exc else None, error=str(exc) if exc else None)
    except Exception:  # never let the bookkeeping of one failure raise another
        log.exception("could not dead-letter delivery %s", args[0])
        return
    if wrote:  # on_failure and task_failure both get here: report only the write that happened
        metrics.delivery_ended("dead", None, time.time())  # an attempt's own dead letter: delivery._count
        monitoring.report_dead_letter(str(args[0]), None)


@task_failure.connect
def _on_task_failure(sender: Any = None, task_id: str | None = None, exception: BaseException | None = None,
                     args: Any = None, **_: Any) -> None:
    # A killed pool child never runs on_failure; this signal still fires. on_failure has
    # already handled an attempt's own dead letter.
    if getattr(sender, "name", None) == "webhooks.deliver" and not isinstance(exception, DeadLettered):
        _dead_letter(exception, args)


@app.task(name="webhooks.deliver", base=DeliveryTask, bind=True)
def deliver(self: DeliveryTask, delivery_id: str) -> str:
    """Attempt one delivery and map the Outcome (see webhooks.delivery)."""
    # The claim made as the message was taken, if any; settle acks the message in its own Redis
    # call (workers.transport) and Celery's ack then stays local. (Celery keeps the tag out of
    # delivery_info; kombu's message properties carry it.)
    tag = (getattr(self.request, "properties", None) or {}).get("delivery_tag")
    claimed = transport.claimed(tag) if tag else None
    broker = transport.broker_message(tag)
    try:
        outcome = delivery.deliver(delivery_id, broker, claimed)
    except _REDIS_DOWN as exc:
        # Back to the head of its queue; if Redis is still down the message stays unacked in
        # Redis and comes back after the visibility timeout. At-least-once: same webhook-id.
        log.warning("delivery %s requeued: Redis unreachable (%s)", delivery_id, type(exc).__name__)
        raise Reject(exc, requeue=True) from None
    finally:
        transport.settled(broker)
    if outcome.action in ("retry", "wait"):
        raise TransientDeliveryError(
            outcome.error or outcome.reason or "retry",
            kind=outcome.reason or "retry",
            status=outcome.status,
            delivery_id=delivery_id,
            retry_after_s=outcome.delay_s,
        )
    if outcome.action == "dead":
        # Already dead-lettered by the attempt; raised so Celery (and Flower) see a failure.
        raise DeadLettered(outcome.error or outcome.reason or "failed", reason=outcome.reason,
                           status=outcome.status, delivery_id=delivery_id)
    return outcome.action


@app.task(name="webhooks.move_due", ignore_result=True)
def move_due() -> int:
    """Move long-tier retries whose time has come back onto the retries queue (beat, every second)."""
    return mover.move_due()


@app.task(name="webhooks.reconcile", ignore_result=True)
def reconcile() -> dict[str, int]:
    """Re-send deliveries whose message was lost (beat, every 5 s); see webhooks.reconcile."""
    from webhooks import reconcile as reconciler

    return reconciler.reconcile()


@app.task(name="webhooks.replay_dead_letters", ignore_result=True)
def replay_dead_letters(account: str, delivery_ids: list[str] | None = None, subscription_id: str | None = None,
                        since: float | None = None, actor: str | None = None) -> dict[str, Any]:
    """Re-send dead letters of ``account`` (ids, or all of a subscription, or since a time)."""
    return dict(deadletters.replay(account, delivery_ids, subscription_id=subscription_id, since=since,
                                   all_=not (delivery_ids or subscription_id or since is not None), actor=actor))
