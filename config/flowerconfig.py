"""Flower settings for chat-webhooks: ``celery -A workers flower --conf=config/flowerconfig.py``.

Flower 2.2 out of the box listens on every interface with no authentication, and its API can
revoke tasks, shut workers down and *start any registered task with any arguments*
(``POST /api/task/async-apply/<name>``). So here:

* basic auth is required: ``FLOWER_BASIC_AUTH=user:password`` (several: comma-separated);
  Flower will not start without it. ``FLOWER_COOKIE_SECRET`` is required too (Flower's default
  is a fresh random value per start, which logs everyone out at each restart).
* it binds 127.0.0.1 unless ``FLOWER_ADDRESS`` says otherwise (the compose file sets 0.0.0.0
  inside the container and publishes the port on the host's loopback only);
* read-only unless ``FLOWER_READ_ONLY=0``: a revoked or hand-started delivery would bypass our
  own records, dead letters and ledger; replays go through ``webhooks dead-letters replay``.

Still open without auth, by Flower's design: ``GET /healthcheck`` ("OK") and ``GET /metrics``
(Prometheus text: worker names, task names and counts, no arguments). Put a reverse proxy in
front if those must be private too. Task arguments shown by Flower are delivery ids only
(``['msg_…']``): no payloads, no secrets.

Flower reads this file after the ``FLOWER_*`` environment, so each value here is taken from the
environment itself, and the command line (``--port=…``) still wins over both.
"""
from __future__ import annotations

import os


def _required(name: str, example: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"flowerconfig: set {name} (e.g. {name}={example}); Flower must not run without it")
    if "change-me" in value:
        raise SystemExit(f"flowerconfig: {name} still has the placeholder from config/example.env: choose your own")
    return value


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw in {"1", "true", "yes", "on"}


def _credentials() -> list[str]:
    pairs = [p.strip() for p in _required("FLOWER_BASIC_AUTH", "admin:a-long-password").split(",") if p.strip()]
    bad = [p.split(":", 1)[0] for p in pairs if ":" not in p or not p.split(":", 1)[1]]
    if bad:
        raise SystemExit(f"flowerconfig: FLOWER_BASIC_AUTH entries must be user:password (bad: {', '.join(bad)})")
    return pairs


# Where to listen: loopback unless told otherwise.
address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")
port = int(os.environ.get("FLOWER_PORT", "5555"))
# Basic auth on every page and API call (not /healthcheck, /metrics: see above).
basic_auth = _credentials()
# Signs Flower's cookies; stable across restarts.
cookie_secret = _required("FLOWER_COOKIE_SECRET", "$(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
# No revoke, terminate, pool or shutdown controls, and no starting tasks from the web.
read_only = _flag("FLOWER_READ_ONLY", True)
# Task events are the worker's choice (`-E`, ~20 % throughput): Flower does not switch them on.
enable_events = _flag("FLOWER_ENABLE_EVENTS", False)
# Bounded memory: the last 10,000 tasks are plenty to watch deliveries; nothing kept on disk.
max_tasks = int(os.environ.get("FLOWER_MAX_TASKS", "10000"))
persistent = False
# Forget workers that have been offline for a day (autoscaled or replaced containers).
purge_offline_workers = 86400
