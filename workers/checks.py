"""Start-up checks a worker logs once it is ready: secrets at rest (see webhooks.secretsweep)."""
from __future__ import annotations

import logging
from typing import Any

import redis
from celery.signals import worker_ready

log = logging.getLogger("webhooks.secrets")


@worker_ready.connect
def warn_about_plaintext_secrets(**_: Any) -> None:
    """Warn when no encryption key is set, or when secrets remain in plain text in Redis."""
    from webhooks.secretsweep import startup_warnings

    try:
        for sentence in startup_warnings():
            log.warning(sentence)
    except redis.RedisError as exc:
        log.warning("could not count plain-text secrets at start-up (%s)", type(exc).__name__)
