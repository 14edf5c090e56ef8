"""The circuit breaker's thresholds come from WEBHOOKS_BREAKER_* settings."""
from __future__ import annotations

import pytest

from webhooks.delivery import breaker_config
from webhooks.errors import ConfigurationError
from webhooks.settings import Settings


def test_breaker_settings_default_to_convoys_thresholds() -> None:
    # Given no breaker variables, When the breaker config is built, Then it is Convoy's
    config = breaker_config(Settings.from_env({}))
    assert (config.min_requests, config.failure_ratio, config.window_s, config.cooldown_s) == (10, 0.7, 300.0, 30.0)


def test_breaker_settings_are_read_from_the_environment() -> None:
    # Given every breaker variable set
    env = {"WEBHOOKS_BREAKER_MIN_REQUESTS": "3", "WEBHOOKS_BREAKER_FAILURE_RATIO": "1",
           "WEBHOOKS_BREAKER_WINDOW_S": "60", "WEBHOOKS_BREAKER_COOLDOWN_S": "2.5"}
    # When the breaker config is built, Then it carries them
    config = breaker_config(Settings.from_env(env))
    assert (config.min_requests, config.failure_ratio, config.window_s, config.cooldown_s) == (3, 1.0, 60.0, 2.5)


@pytest.mark.parametrize("name,value", [
    ("WEBHOOKS_BREAKER_MIN_REQUESTS", "0"),
    ("WEBHOOKS_BREAKER_FAILURE_RATIO", "0"),
    ("WEBHOOKS_BREAKER_FAILURE_RATIO", "1.5"),
    ("WEBHOOKS_BREAKER_WINDOW_S", "0"),
    ("WEBHOOKS_BREAKER_COOLDOWN_S", "-1"),
    ("WEBHOOKS_BREAKER_COOLDOWN_S", "soon"),
])
def test_bad_breaker_settings_are_refused_by_name(name: str, value: str) -> None:
    # Given a bad breaker value, When settings are read, Then ConfigurationError names the variable
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})
