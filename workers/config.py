"""Every Celery/kombu knob we depend on, set explicitly, each with the reason (REFERENCE.md)."""
from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

from webhooks import sentinel
from webhooks.enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE
from webhooks.recovery import mutex_expire_s, restore_interval_s
from webhooks.settings import Settings

__all__ = ["celery_config"]


def celery_config(s: Settings) -> dict[str, Any]:
    """The Celery configuration for settings ``s``."""
    transport_options: dict[str, Any] = {
        # An unacked message whose score is older than this is handed out again; every process
        # must agree. Live workers re-score what they hold (workers/heartbeat.py), so this is
        # the time a dead worker's messages wait, not a limit on countdowns (webhooks/recovery.py).
        "visibility_timeout": s.visibility_timeout_s,
        # ... and only when a consumer sweeps the unacked set: kombu's default sweep runs every
        # 10th tick of 10 s (100 s late); every tick of 5 s instead, so a killed worker's
        # deliveries come back within visibility_timeout + 5 s (one cheap ZRANGE per tick).
        "unacked_restore_interval": restore_interval_s(s.visibility_timeout_s),
        "unacked_restore_throttle": 1,
        # A sweeper SIGKILLed while holding the sweep's mutex blocks every sweep until it expires
        # (kombu: 300 s); sweeps take milliseconds, so let it expire within a few ticks.
        "unacked_mutex_expire": mutex_expire_s(s.visibility_timeout_s),
        # kombu's defaults are None: a dead Redis would block a producer for minutes.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "max_retries": 3,
        # Retries (Celery countdowns) go out through the same Redis; keep heartbeats on.
        "health_check_interval": 25,
    }
    broker_url, broker_transport = s.redis_url, "workers.transport:Transport"
    if sentinel.is_sentinel(s.redis_url):
        # Redis Sentinel: kombu's spelling of the URL, the primary's name and the sentinels'
        # own options (a given sentinel_kwargs replaces redis-py's socket defaults: repeat them).
        url = sentinel.parse(s.redis_url)
        broker_url, broker_transport = url.kombu_url(), "workers.sentinel_transport:Transport"
        transport_options["master_name"] = url.master
        transport_options["sentinel_kwargs"] = url.sentinel_kwargs(
            transport_options["socket_timeout"], transport_options["socket_connect_timeout"])
    return {
        "broker_url": broker_url,
        # kombu's Redis transport, with the race that made a worker exit on a Redis restart closed.
        "broker_transport": broker_transport,
        "broker_transport_options": transport_options,
        # A BRPOP on a primary demoted by a failover ends in "UNBLOCKED force unblock", a channel
        # error: reconnect (to the new primary) instead of exiting the worker (celery#7946).
        "broker_channel_error_retry": True,
        # Keep reconnecting after a Redis restart instead of exiting the worker.
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # No result backend: outcomes live in our own delivery records and attempt log.
        "result_backend": None,
        "task_ignore_result": True,
        # JSON only: the messages carry ids, never pickles.
        "task_serializer": "json",
        "accept_content": ["json"],
        # At-least-once: ack after the attempt, one message at a time per slot.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # A lost pool child: retry the delivery rather than fail it (prefork only).
        "task_retry_on_worker_lost": True,
        # ... and do not also requeue it (that would make two copies).
        "task_reject_on_worker_lost": False,
        # Fresh deliveries and retries in separate queues: retries never stand in front. A bare
        # `celery -A workers worker` consumes every queue listed here (`-Q` still narrows it).
        # Declared as Celery declares a missing queue (direct exchange of the same name), so the
        # bindings already in Redis stay the same.
        "task_queues": [Queue(q, Exchange(q, "direct"), routing_key=q) for q in (DELIVERIES_QUEUE, RETRIES_QUEUE)],
        "task_default_queue": DELIVERIES_QUEUE,
        "task_routes": {"webhooks.deliver": {"queue": DELIVERIES_QUEUE}},
        "task_create_missing_queues": True,
        # Flower shows args: ours are ids; cap the repr anyway.
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0},
        # The production shape without flags: deliveries wait on the network, not the CPU, so a
        # threads pool (one process, one Redis connection pool) of WEBHOOKS_WORKER_CONCURRENCY.
        # `-P`/`-c` still override (except `-P prefork`, which Celery cannot tell from its default).
        "worker_pool": "threads",
        "worker_concurrency": s.worker_concurrency,
        # Countdown (ETA) retries are held in worker RAM: cap them so fresh work is not starved.
        "worker_eta_task_limit": 1000,
        # On SIGTERM: stop taking work and give in-flight deliveries time to finish
        # (a delivery's total deadline plus margin) before the cold shutdown requeues them.
        "worker_soft_shutdown_timeout": s.total_timeout_s + 5,
        "worker_enable_soft_shutdown_on_idle": True,
        # Task events feed Flower's task list and cost ~20 % throughput: WEBHOOKS_WORKER_EVENTS=1
        # (docker-compose.yml, which runs Flower, sets it); `-E` on the command line also works.
        "worker_send_task_events": s.worker_events,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "timezone": "UTC",
        "enable_utc": True,
        # Celery's file-backed scheduler that also refreshes beat's liveness file (workers/beat.py).
        "beat_scheduler": "workers.beat:Scheduler",
        "beat_schedule": {
            "move-due-retries": {"task": "webhooks.move_due", "schedule": 1.0},
            # kombu can lose a message a worker took but had not yet recorded (kombu #305).
            "reconcile-lost-deliveries": {"task": "webhooks.reconcile", "schedule": 5.0},
        },
    }
