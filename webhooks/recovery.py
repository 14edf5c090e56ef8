"""How fast a dead worker's deliveries come back, and the rule that keeps live ones safe.

A worker takes a message from Redis and holds it "unacked" (kombu's ``unacked`` hash and
``unacked_index`` sorted set, scored by the time it was taken) until the attempt ends; a
countdown retry is held the same way until its ETA. Every consumer sweeps that set and puts
back on its queue any message whose score is older than the visibility timeout: that is how
a SIGKILLed worker's messages come back. A live worker must therefore keep the scores of what
it still holds fresh: its heartbeat (``workers/heartbeat.py``) re-scores them every
``heartbeat_interval_s``. A message is then restored only when its holder has missed beats
for ``visibility - heartbeat`` seconds, however long its countdown or its endpoint.

Defaults (40 s visibility, a beat every 8 s, a sweep every 5 s by every consumer): a killed
worker's messages are back on their queue at most 45 s after its last beat, so at most 45 s
after the kill; a live worker may stall for 32 s (a Redis outage, a frozen event loop) before
anything it holds is handed out again.
"""
from __future__ import annotations

from .errors import ConfigurationError

__all__ = ["heartbeat_interval_s", "restore_interval_s", "mutex_expire_s", "stall_tolerance_s",
           "check_recovery_fits", "MIN_VISIBILITY_TIMEOUT_S"]

MIN_VISIBILITY_TIMEOUT_S = 20.0
"""Below this, a Redis hiccup of a few seconds (socket timeout 5 s) would hand live work out."""


def heartbeat_interval_s(visibility_timeout_s: float) -> float:
    """Seconds between two refreshes of a worker's unacked scores: a fifth of the visibility timeout."""
    return visibility_timeout_s / 5


def stall_tolerance_s(visibility_timeout_s: float) -> float:
    """How long a live worker's heartbeat may be late before its messages are handed out again."""
    return visibility_timeout_s - heartbeat_interval_s(visibility_timeout_s)


def restore_interval_s(visibility_timeout_s: float) -> int:
    """Seconds between two sweeps of the unacked set by each consumer: 5, or less for a short timeout."""
    return max(1, min(5, int(visibility_timeout_s // 8)))


def mutex_expire_s(visibility_timeout_s: float) -> int:
    """TTL of kombu's sweep mutex. A sweeper SIGKILLed while holding it stops every sweep until it
    expires (kombu: 300 s); a sweep takes milliseconds, so a quarter of the timeout, 5 s at least."""
    return max(5, int(visibility_timeout_s // 4))


def check_recovery_fits(visibility_timeout_s: float, *, attempt_timeout_s: float) -> None:
    """Raise ConfigurationError when the visibility timeout leaves a live worker no margin.

    Countdowns do not count (the heartbeat keeps them); what counts is how late a beat can be.
    A beat runs on the worker's event loop; with the solo pool an attempt blocks that loop, so
    the attempt's deadline must fit in the tolerance, and the timeout is at least 20 s.
    """
    if visibility_timeout_s < MIN_VISIBILITY_TIMEOUT_S:
        raise ConfigurationError(
            f"WEBHOOKS_VISIBILITY_TIMEOUT_S={visibility_timeout_s:g} is too short: at least "
            f"{MIN_VISIBILITY_TIMEOUT_S:g} s, or a Redis hiccup hands live deliveries to another worker")
    tolerance = stall_tolerance_s(visibility_timeout_s)
    if attempt_timeout_s + 5 > tolerance:
        raise ConfigurationError(
            f"WEBHOOKS_VISIBILITY_TIMEOUT_S={visibility_timeout_s:g} tolerates a late heartbeat of "
            f"{tolerance:g} s, less than one attempt (WEBHOOKS_TOTAL_TIMEOUT_S={attempt_timeout_s:g}) "
            f"plus 5 s: raise it to at least {(attempt_timeout_s + 5) * 5 / 4:g}")
