"""The retry policy: what a response means, and how long to wait before the next try.

Pure: no Redis, no Celery, no clock of its own (callers pass ``now`` and an ``rng``).

    classify(status, error_kind) -> Verdict          what one attempt's result means
    next_delay(schedule, retries_done, verdict) -> s  how long until the next try (None: stop)
    split_tier(delay_s, max_countdown_s)             Celery countdown, or parked in Redis
    check_countdown_fits(...)                        start-up check against the visibility timeout

Delay rules (each delay is only ever stretched by jitter, never shortened):

* RETRY waits the schedule's step ``d``: uniform in ``[d, d*(1+jitter)]``.
* THROTTLED (429/502/503/504) backs off harder. The target is ``Retry-After`` clamped to
  ``[d, max(2*d, 5 s)]``, or, without ``Retry-After``, the top of that range; the target is
  then jittered the same way. So an immediate step answered with 503 waits 5-6 s, and a
  server asking for an hour on a 5-minute step waits 10-12 minutes.
"""
from __future__ import annotations

import enum
import math
import random
import re
from dataclasses import dataclass
from datetime import timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Literal

from .errors import ConfigurationError, ValidationError

__all__ = [
    "Verdict",
    "classify",
    "parse_retry_after",
    "RetrySchedule",
    "next_delay",
    "split_tier",
    "check_schedule_fits",
    "check_countdown_fits",
    "TRANSIENT_ERROR_KINDS",
    "PERMANENT_ERROR_KINDS",
    "THROTTLE_FLOOR_S",
    "MAX_SCHEDULE_STEPS",
    "MAX_SCHEDULE_TOTAL_S",
]

TRANSIENT_ERROR_KINDS = frozenset({"timeout", "connect", "connect_timeout", "tls", "network"})
PERMANENT_ERROR_KINDS = frozenset({"url_refused", "transform"})
_THROTTLE_STATUSES = frozenset({429, 502, 503, 504})

THROTTLE_FLOOR_S = 5.0
"""A throttled attempt may wait up to ``max(2*step, THROTTLE_FLOOR_S)``, so that an
immediate (0 s) step can still honour a ``Retry-After``."""

MAX_SCHEDULE_STEPS = 50
MAX_SCHEDULE_TOTAL_S = 7 * 86400.0
"""The steps of a schedule add up to at most 7 days (before jitter and throttling)."""

DEFAULT_DELAYS_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)

_UNITS_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STEP_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)\Z", re.IGNORECASE)
_DELAY_SECONDS_RE = re.compile(r"^\d+(?:\.\d+)?\Z")
_rng = random.Random()


class Verdict(enum.Enum):
    """What one attempt's result means for the delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    THROTTLED = "throttled"
    GONE = "gone"
    PERMANENT = "permanent"


def classify(status: int | None, error_kind: str | None = None) -> Verdict:
    """Classify an attempt by its HTTP ``status``, or by ``error_kind`` when there was none.

    A status wins over the error kind. 2xx is DELIVERED; 410 GONE; 429/502/503/504
    THROTTLED; any other status (3xx included: redirects are never followed) RETRY.
    Without a status, "url_refused" and "transform" are PERMANENT and every other kind
    (timeout, connect, tls, network, ...) RETRY: the schedule bounds an unknown failure.

    Raises ValueError when neither a status nor an error kind is given.
    """
    if status is not None:
        if 200 <= status <= 299:
            return Verdict.DELIVERED
        if status == 410:
            return Verdict.GONE
        if status in _THROTTLE_STATUSES:
            return Verdict.THROTTLED
        return Verdict.RETRY
    if error_kind is None:
        raise ValueError("classify() needs a status or an error kind")
    if error_kind in PERMANENT_ERROR_KINDS:
        return Verdict.PERMANENT
    return Verdict.RETRY


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when absent or unusable.

    Accepts delay-seconds ("120", also "1.5") or an HTTP-date, read against ``now`` (unix
    time); a date in the past means 0. Negative numbers and garbage give None.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS_RE.match(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def _format_step(delay_s: float) -> str:
    for suffix, unit in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if delay_s and delay_s % unit == 0:
            return f"{int(delay_s // unit)}{suffix}"
    if delay_s == 0:
        return "0"
    return f"{format(Decimal(repr(delay_s)), 'f')}s"


def _schedule_message(problems: list[str]) -> str:
    """"invalid retry schedule: <what is wrong>" (the first five problems, then a count)."""
    shown = "; ".join(problems[:5])
    if len(problems) > 5:
        shown += f"; and {len(problems) - 5} more"
    return f"invalid retry schedule: {shown}"


@dataclass(frozen=True)
class RetrySchedule:
    """The delays before retry 1, 2, ... (its length is the number of retries) and the jitter.

    Validated on construction: 1 to 50 steps, each finite and >= 0, adding up to at most
    7 days (before jitter); jitter between 0 and 1. Raises ValidationError naming
    "retry_schedule" or "retry_jitter".
    """

    delays_s: tuple[float, ...]
    jitter: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "delays_s", tuple(float(d) for d in self.delays_s))
        errors: dict[str, list[str]] = {}
        problems = []
        if not self.delays_s:
            problems.append("needs at least one delay")
        if len(self.delays_s) > MAX_SCHEDULE_STEPS:
            problems.append(f"has {len(self.delays_s)} steps, more than {MAX_SCHEDULE_STEPS}")
        for i, d in enumerate(self.delays_s, start=1):
            if not math.isfinite(d) or d < 0:
                problems.append(f"step {i} is {d!r}, not a finite delay >= 0")
        if not problems and self.total_s > MAX_SCHEDULE_TOTAL_S:
            problems.append(f"adds up to {self.total_s:g} s, more than 7 days")
        if problems:
            errors["retry_schedule"] = problems
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter <= 1):
            errors["retry_jitter"] = [f"{self.jitter!r} is not between 0 and 1"]
        if errors:
            raise ValidationError(_schedule_message([m for msgs in errors.values() for m in msgs]), errors)

    @classmethod
    def parse(cls, text: str, jitter: float = 0.2) -> "RetrySchedule":
        """Read "0,5s,5m,30m,2h,1d": comma-separated steps, plain numbers are seconds,
        suffixes s/m/h/d. Raises ValidationError listing every bad step."""
        delays: list[float] = []
        problems: list[str] = []
        for i, raw in enumerate(text.split(","), start=1):
            match = _STEP_RE.match(raw.strip())
            if match is None:
                problems.append(f"step {i} {raw.strip()!r} is not a delay like 30, 5s, 5m, 2h or 1d")
                continue
            delays.append(float(match.group(1)) * _UNITS_S[match.group(2).lower()])
        if problems:
            raise ValidationError(_schedule_message(problems), {"retry_schedule": problems})
        return cls(tuple(delays), jitter)

    @classmethod
    def default(cls) -> "RetrySchedule":
        """The first attempt immediately, then retries after 5 s, 5 min, 30 min, 2 h, 5 h,
        10 h, 14 h, 20 h and 24 h (10 attempts over about 3.15 days), with 20 % jitter.
        No retry is immediate: "immediately" is the first attempt itself."""
        return cls(DEFAULT_DELAYS_S, 0.2)

    def to_text(self) -> str:
        """The schedule in the form ``parse`` reads, with the largest exact unit per step."""
        return ",".join(_format_step(d) for d in self.delays_s)

    @property
    def total_s(self) -> float:
        """The sum of the steps, before jitter and throttling."""
        return sum(self.delays_s)

    @property
    def worst_case_s(self) -> float:
        """The longest all retries can take: every attempt throttled, every delay fully
        jittered. Retention of delivery records should exceed it."""
        return sum(max(2 * d, THROTTLE_FLOOR_S) for d in self.delays_s) * (1 + self.jitter)


def next_delay(
    schedule: RetrySchedule,
    retries_done: int,
    verdict: Verdict,
    *,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait before the next retry, or None when there is none.

    ``retries_done`` counts retries already made (0 after the first attempt). None for
    DELIVERED, GONE and PERMANENT, and once the schedule is exhausted. ``retry_after_s``
    (from ``parse_retry_after``) is honoured for THROTTLED only, clamped as the module
    docstring says. Raises ValueError for a negative ``retries_done``.
    """
    if retries_done < 0:
        raise ValueError(f"retries_done must be >= 0, not {retries_done}")
    if verdict not in (Verdict.RETRY, Verdict.THROTTLED) or retries_done >= len(schedule.delays_s):
        return None
    step = schedule.delays_s[retries_done]
    target = step
    if verdict is Verdict.THROTTLED:
        upper = max(2 * step, THROTTLE_FLOOR_S)
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s >= 0:
            target = min(max(retry_after_s, step), upper)
        else:
            target = upper
    return target * (1 + (rng or _rng).uniform(0, schedule.jitter))


def split_tier(delay_s: float, max_countdown_s: float) -> Literal["countdown", "park"]:
    """"countdown" when Celery may hold the delay (``delay_s <= max_countdown_s``), else
    "park": the delivery waits in Redis's parked set."""
    return "countdown" if delay_s <= max_countdown_s else "park"


def check_countdown_fits(
    max_countdown_s: float, jitter: float, visibility_timeout_s: float, *, attempt_timeout_s: float
) -> None:
    """Raise ConfigurationError when a Celery countdown could outlive the visibility timeout.

    A countdown on Redis is held unacked in worker RAM; past the visibility timeout it is
    restored and runs twice. The longest countdown, stretched by jitter, plus one attempt,
    must stay within half of the visibility timeout.
    """
    worst = max_countdown_s * (1 + jitter) + attempt_timeout_s
    if worst > visibility_timeout_s / 2:
        raise ConfigurationError(
            f"WEBHOOKS_MAX_COUNTDOWN_S={max_countdown_s:g} with jitter {jitter:g} "
            f"could hold a retry {worst:g}s, more than half of "
            f"WEBHOOKS_VISIBILITY_TIMEOUT_S={visibility_timeout_s:g}: it would run twice"
        )


def check_schedule_fits(
    schedule: RetrySchedule,
    max_countdown_s: float,
    visibility_timeout_s: float,
    *,
    attempt_timeout_s: float = 30.0,
) -> None:
    """Start-up check of ``schedule``'s jitter against the countdown cap and visibility
    timeout (see ``check_countdown_fits``); ``attempt_timeout_s`` is the margin for the
    attempt itself (settings.total_timeout_s). Raises ConfigurationError."""
    check_countdown_fits(
        max_countdown_s, schedule.jitter, visibility_timeout_s, attempt_timeout_s=attempt_timeout_s
    )
