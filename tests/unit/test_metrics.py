"""The metric definitions: result classes, names, labels, the per-account opt-in, the port setting."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from webhooks import metrics, metrics_exporter
from webhooks.errors import ConfigurationError
from webhooks.settings import Settings


@pytest.mark.parametrize("status, kind, expected", [
    (200, None, "2xx"), (204, None, "2xx"), (301, None, "3xx"), (404, None, "4xx"), (410, None, "4xx"),
    (503, None, "5xx"), (None, "timeout", "timeout"), (None, "connect_timeout", "connect"),
    (None, "connect", "connect"), (None, "network", "connect"), (None, "tls", "tls"),
    (None, "url_refused", "refused"), (None, "transform", "other"), (None, "encryption", "other"), (999, None, "other"),
])
def test_result_class(status, kind, expected):
    assert metrics.result_class(status, kind) == expected


def test_exported_names_cover_every_series_with_its_suffixes():
    names = metrics.exported_names()
    for name in ("webhooks_attempts_total", "webhooks_deliveries_ended_total", "webhooks_retries_scheduled_total",
                 "webhooks_breaker_transitions_total", "webhooks_attempt_duration_seconds_bucket",
                 "webhooks_attempt_duration_seconds_count", "webhooks_attempt_duration_seconds_sum",
                 "webhooks_delivery_latency_seconds_bucket"):
        assert name in names
    assert "webhooks_dead_letters" in metrics_exporter.exported_names()


def test_the_deadline_lands_in_a_finite_attempt_bucket():
    # The total deadline is 10-30 s: a timeout must not vanish into +Inf
    assert 30 in metrics.ATTEMPT_BUCKETS_S and 15 in metrics.ATTEMPT_BUCKETS_S and 10 in metrics.ATTEMPT_BUCKETS_S


def test_per_account_adds_one_account_label_and_none_by_default():
    plain, tenant = CollectorRegistry(), CollectorRegistry()
    metrics._Metrics(plain, per_account=False).attempts.labels("2xx").inc()
    m = metrics._Metrics(tenant, per_account=True)
    m.attempts.labels("2xx", *m.labels("acme")).inc()
    assert plain.get_sample_value("webhooks_attempts_total", {"result": "2xx"}) == 1
    assert tenant.get_sample_value("webhooks_attempts_total", {"result": "2xx", "account": "acme"}) == 1


@pytest.mark.parametrize("raw, ports", [("", ()), ("9100", (9100,)), ("9100-9102", (9100, 9101, 9102))])
def test_metrics_port_setting(raw, ports):
    assert Settings.from_env({"WEBHOOKS_METRICS_PORT": raw}).metrics_ports == ports


@pytest.mark.parametrize("raw", ["x", "9102-9100", "0", "70000"])
def test_metrics_port_setting_refuses_nonsense(raw):
    with pytest.raises(ConfigurationError):
        Settings.from_env({"WEBHOOKS_METRICS_PORT": raw})
