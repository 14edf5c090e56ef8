"""The retry policy: classification, Retry-After, schedules, delays, tiers, start-up check."""
from __future__ import annotations

import random
from email.utils import format_datetime
from datetime import datetime, timezone

import pytest

from webhooks.errors import ConfigurationError, ValidationError
from webhooks.policy import (
    RetrySchedule,
    Verdict,
    check_schedule_fits,
    classify,
    next_delay,
    parse_retry_after,
    split_tier,
)

NOW = 1_700_000_000.0  # a fixed "now" for Retry-After dates


# --- classify -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (200, None, Verdict.DELIVERED),
        (201, None, Verdict.DELIVERED),
        (204, None, Verdict.DELIVERED),
        (301, None, Verdict.RETRY),
        (302, None, Verdict.RETRY),
        (307, None, Verdict.RETRY),
        (400, None, Verdict.RETRY),
        (401, None, Verdict.RETRY),
        (404, None, Verdict.RETRY),
        (410, None, Verdict.GONE),
        (429, None, Verdict.THROTTLED),
        (500, None, Verdict.RETRY),
        (502, None, Verdict.THROTTLED),
        (503, None, Verdict.THROTTLED),
        (504, None, Verdict.THROTTLED),
        (None, "timeout", Verdict.RETRY),
        (None, "connect", Verdict.RETRY),
        (None, "connect_timeout", Verdict.RETRY),
        (None, "tls", Verdict.RETRY),
        (None, "network", Verdict.RETRY),
        (None, "url_refused", Verdict.PERMANENT),
        (None, "transform", Verdict.PERMANENT),
        (503, "timeout", Verdict.THROTTLED),  # a status wins over the error kind
    ],
)
def test_classify_maps_each_response_class(status: int | None, kind: str | None, expected: Verdict) -> None:
    assert classify(status, kind) is expected


def test_classify_without_status_or_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        classify(None)


# --- Retry-After ----------------------------------------------------------------------


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0


def test_retry_after_as_http_date_is_read_against_now() -> None:
    # Given a date 90 s after "now"
    header = format_datetime(datetime.fromtimestamp(NOW + 90, tz=timezone.utc), usegmt=True)
    # When it is parsed, Then it is a 90 s wait
    assert parse_retry_after(header, now=NOW) == pytest.approx(90.0)


def test_retry_after_date_in_the_past_means_now() -> None:
    header = format_datetime(datetime.fromtimestamp(NOW - 600, tz=timezone.utc), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1e3", "nan", "inf", "12 parsecs"])
def test_retry_after_garbage_or_negative_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


# --- RetrySchedule --------------------------------------------------------------------


def test_default_schedule_matches_the_documented_steps() -> None:
    schedule = RetrySchedule.default()
    assert schedule.to_text() == "5s,5m,30m,2h,5h,10h,14h,20h,24h"
    assert schedule.jitter == 0.2
    assert schedule.total_s == 272_105  # about 3.15 days


@pytest.mark.parametrize(
    ("text", "delays"),
    [
        ("0,5s,5m,30m,2h,1d", (0, 5, 300, 1800, 7200, 86400)),
        ("10, 20 ,30", (10, 20, 30)),
        ("1.5s,90,1.5m", (1.5, 90, 90)),
        ("2H,3M", (7200, 180)),
    ],
)
def test_parse_reads_units(text: str, delays: tuple[float, ...]) -> None:
    assert RetrySchedule.parse(text).delays_s == delays


@pytest.mark.parametrize(
    "schedule",
    [
        RetrySchedule.default(),
        RetrySchedule((0, 1.5, 90, 5400, 0.25), jitter=0.1),
        RetrySchedule((86400 * 2,), jitter=0),
    ],
)
def test_to_text_round_trips(schedule: RetrySchedule) -> None:
    assert RetrySchedule.parse(schedule.to_text(), jitter=schedule.jitter) == schedule


@pytest.mark.parametrize(
    "text",
    ["", "5,,6", "5x", "-5", "5 minutes", "1w", "abc", ",".join(["1"] * 51), "8d", "4d,4d"],
)
def test_parse_refuses_invalid_texts_under_retry_schedule(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        RetrySchedule.parse(text)
    assert info.value.errors["retry_schedule"]


def test_parse_names_every_bad_step() -> None:
    with pytest.raises(ValidationError) as info:
        RetrySchedule.parse("5,x,10,y")
    assert len(info.value.errors["retry_schedule"]) == 2


def test_schedule_refuses_bad_jitter_and_negative_steps() -> None:
    with pytest.raises(ValidationError) as info:
        RetrySchedule((5, -1), jitter=1.5)
    assert set(info.value.errors) == {"retry_schedule", "retry_jitter"}


def test_exactly_seven_days_is_allowed() -> None:
    assert RetrySchedule.parse("3d,4d").total_s == 7 * 86400


# --- next_delay -----------------------------------------------------------------------


def test_default_delays_stay_within_step_and_step_plus_jitter() -> None:
    schedule = RetrySchedule.default()
    rng = random.Random(1234)
    for _ in range(200):
        for done, step in enumerate(schedule.delays_s):
            delay = next_delay(schedule, done, Verdict.RETRY, rng=rng)
            assert delay is not None
            assert step <= delay <= step * 1.2
            if step > 0:
                assert delay > 0  # never immediate unless the step is


def test_jitter_actually_spreads_the_delays() -> None:
    rng = random.Random(7)
    delays = {next_delay(RetrySchedule.default(), 4, Verdict.RETRY, rng=rng) for _ in range(20)}
    assert len(delays) == 20


def test_schedule_is_exhausted_after_its_length() -> None:
    schedule = RetrySchedule.default()
    assert next_delay(schedule, len(schedule.delays_s) - 1, Verdict.RETRY) is not None
    assert next_delay(schedule, len(schedule.delays_s), Verdict.RETRY) is None
    assert next_delay(schedule, len(schedule.delays_s), Verdict.THROTTLED, retry_after_s=1) is None


@pytest.mark.parametrize("verdict", [Verdict.DELIVERED, Verdict.GONE, Verdict.PERMANENT])
def test_final_verdicts_never_retry(verdict: Verdict) -> None:
    assert next_delay(RetrySchedule.default(), 0, verdict) is None


def test_negative_retries_done_is_refused() -> None:
    with pytest.raises(ValueError):
        next_delay(RetrySchedule.default(), -1, Verdict.RETRY)


def test_retry_ignores_retry_after() -> None:
    schedule = RetrySchedule((300,), jitter=0)
    assert next_delay(schedule, 0, Verdict.RETRY, retry_after_s=5000) == 300


@pytest.mark.parametrize(
    ("step", "retry_after", "expected"),
    [
        (300, 400, 400),  # within [step, 2*step]: honoured
        (300, 10, 300),  # below the step: the step
        (300, 3600, 600),  # above twice the step: twice the step
        (300, None, 600),  # no Retry-After: twice the step
        (0, 2, 2),  # the immediate step still honours a short Retry-After
        (0, 60, 5),  # ... up to the 5 s floor
        (0, None, 5),  # an immediate step answered 503 waits the floor
        (5, None, 10),
        (300, float("nan"), 600),  # unusable hint: as if absent
    ],
)
def test_throttled_clamps_retry_after_between_step_and_twice_it(
    step: float, retry_after: float | None, expected: float
) -> None:
    schedule = RetrySchedule((step,), jitter=0)
    assert next_delay(schedule, 0, Verdict.THROTTLED, retry_after_s=retry_after) == expected


def test_throttled_jitter_only_adds() -> None:
    schedule = RetrySchedule((300,), jitter=0.2)
    rng = random.Random(99)
    for _ in range(100):
        delay = next_delay(schedule, 0, Verdict.THROTTLED, retry_after_s=400, rng=rng)
        assert delay is not None and 400 <= delay <= 480


def test_worst_case_counts_throttling_and_jitter() -> None:
    assert RetrySchedule((0, 100), jitter=0.5).worst_case_s == (5 + 200) * 1.5


# --- tiers and the start-up check -----------------------------------------------------


def test_split_tier_keeps_short_delays_in_celery() -> None:
    assert split_tier(0, 600) == "countdown"
    assert split_tier(600, 600) == "countdown"
    assert split_tier(600.001, 600) == "park"
    assert split_tier(7200, 600) == "park"


def test_check_schedule_fits_refuses_a_countdown_near_the_visibility_timeout() -> None:
    with pytest.raises(ConfigurationError, match="run twice"):
        check_schedule_fits(RetrySchedule.default(), 3000, 3600)


def test_check_schedule_fits_accepts_the_defaults() -> None:
    check_schedule_fits(RetrySchedule.default(), 600, 3600, attempt_timeout_s=15)


def test_check_schedule_fits_counts_the_jitter() -> None:
    # 1600 s (+15 s attempt) fits half of 3600 without jitter, not with 20 % of it
    check_schedule_fits(RetrySchedule((1,), jitter=0), 1600, 3600, attempt_timeout_s=15)
    with pytest.raises(ConfigurationError):
        check_schedule_fits(RetrySchedule((1,), jitter=0.2), 1600, 3600, attempt_timeout_s=15)
