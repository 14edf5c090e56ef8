"""Invalid settings and refused URLs say what is wrong and how to fix it (issue 10 item 7)."""
from __future__ import annotations

import pytest

from webhooks.errors import ConfigurationError, UrlRefused, ValidationError
from webhooks.policy import RetrySchedule
from webhooks.settings import Settings
from webhooks.urlguard import check_url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://127.0.0.1:abc/0", "Port could not be cast to integer"),
        ("redis://:s3cret-pw@127.0.0.1:99999/0", "Port out of range"),
        ("redis://127.0.0.1:6379/zero", "database that is not a number"),
        ("htp://127.0.0.1:6379/0", "is not a Redis URL"),
        ("127.0.0.1:6379", "is not a Redis URL"),
        ("redis://[::1:6379/0", "Invalid IPv6 URL"),
    ],
)
def test_a_malformed_redis_url_is_one_sentence_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"WEBHOOKS_REDIS_URL": url})
    message = str(caught.value)
    assert message.startswith("WEBHOOKS_REDIS_URL ") and says in message
    assert "\n" not in message and "s3cret-pw" not in message
    assert "redis://[:password@]host:port/db" in message


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.internal:6380/3", "unix:///run/redis.sock?db=2", "redis://localhost"])
def test_valid_redis_urls_pass(url: str) -> None:
    assert Settings.from_env({"WEBHOOKS_REDIS_URL": url}).redis_url == url


def test_a_malformed_encryption_key_is_a_settings_error_that_does_not_echo_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"WEBHOOKS_ENCRYPTION_KEY": "not-a-fernet-key"})
    assert str(caught.value).startswith("WEBHOOKS_ENCRYPTION_KEY is not a valid Fernet key")
    assert "not-a-fernet-key" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("5x", "step 1 '5x' is not a delay like 30, 5s, 5m, 2h or 1d"),
        ("5,,10", "step 2 '' is not a delay"),
        ("8d", "adds up to 691200 s, more than 7 days"),
        (",".join(["1"] * 51), "has 51 steps, more than 50"),
    ],
)
def test_an_invalid_retry_schedule_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetrySchedule.parse(text)
    assert str(caught.value).startswith("invalid retry schedule: ") and says in str(caught.value)
    with pytest.raises(ConfigurationError) as setting:
        Settings.from_env({"WEBHOOKS_RETRY_SCHEDULE": text})
    assert str(setting.value).startswith("WEBHOOKS_RETRY_SCHEDULE=") and says in str(setting.value)


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("https://127.0.0.1:8443/hook", "WEBHOOKS_ALLOW_NETWORKS=127.0.0.1/32"),
        ("https://10.1.2.3/hook", "WEBHOOKS_ALLOW_NETWORKS=10.1.2.3/32"),
        ("https://[::1]/hook", "WEBHOOKS_ALLOW_NETWORKS=::1/128"),
        ("https://localhost:8443/hook", "WEBHOOKS_ALLOW_NETWORKS=127.0.0.0/8"),
        ("http://example.com/hook", "WEBHOOKS_ALLOW_HTTP=1"),
    ],
)
def test_a_refused_local_url_names_the_setting_that_allows_it_for_local_work(url: str, names: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        check_url(url, settings=Settings(), resolver=lambda host, port: ["93.184.216.34"])
    assert names in str(caught.value) and "local work" in str(caught.value)


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data", "https://[fe80::1]/", "https://100.64.0.1/"])
def test_metadata_and_link_local_addresses_get_no_hint_to_allow_them(url: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        check_url(url, settings=Settings())
    assert "WEBHOOKS_ALLOW_NETWORKS" not in str(caught.value)
