"""The Grafana dashboard asks only for what the code exports: every PromQL expression parses
(promql-parser, Prometheus' grammar) and every metric it selects, with every label it matches
on, is one webhooks.metrics or webhooks.metrics_exporter defines."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from webhooks import metrics, metrics_exporter

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "chat-webhooks.json"
# Grafana replaces its own variables before sending a query; so do we.
_GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def _exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in _panels(dash["panels"]) for t in p.get("targets", [])]


def _labels_by_name() -> dict[str, set[str]]:
    """Sample name -> label names it can carry (suffixes included; buckets also carry le)."""
    labels: dict[str, set[str]] = {}
    for sample_name in metrics.exported_names():
        family = re.sub(r"_(total|created|bucket|count|sum)$", "", sample_name)
        labels[sample_name] = set(metrics.LABELS[family]) | ({"le"} if sample_name.endswith("_bucket") else set())
    for name, (_help, label_names) in metrics_exporter.GAUGES.items():
        labels[name] = set(label_names)
    return labels


def test_the_dashboard_has_panels_with_queries():
    exprs = _exprs()
    assert len(exprs) >= 15
    titles = {title for title, _ in exprs}
    for needed in ("Delivery success (5 m)", "Attempts, by result", "Attempt duration", "Publish to delivered",
                   "Queues, in flight, parked", "Dead letters", "Open breakers"):
        assert needed in titles


def test_every_query_parses_and_uses_only_exported_metrics_and_labels():
    promql = pytest.importorskip("promql_parser", reason="promql-parser is in the test extra")
    known = _labels_by_name()
    used: set[str] = set()
    for title, expr in _exprs():
        for var, value in _GRAFANA_VARS.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"{title}: unknown Grafana variable in {expr}"
        try:
            ast = promql.parse(expr)
        except Exception as exc:  # noqa: BLE001 - the parser's error names the position
            pytest.fail(f"{title}: {expr!r} does not parse: {exc}")
        selectors: list[Any] = []
        promql.walk(ast, lambda node: selectors.append(node) if isinstance(node, promql.VectorSelector) else None)
        assert selectors, f"{title}: no metric in {expr}"
        for sel in selectors:
            assert sel.name in known, f"{title}: {sel.name} is not a metric the code exports"
            for matcher in sel.matchers.matchers:
                assert matcher.name in known[sel.name], f"{title}: {sel.name} has no label {matcher.name}"
            used.add(sel.name)
        for label in re.findall(r"\bby \(([^)]*)\)", expr):
            for name in (n.strip() for n in label.split(",")):
                assert any(name in known[s.name] for s in selectors), f"{title}: no metric here has label {name}"
    # ... and every metric the code exports is on the dashboard somewhere
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    for name in ("webhooks_attempts", "webhooks_deliveries_ended", "webhooks_retries_scheduled", "webhooks_breaker_transitions",
                 "webhooks_attempt_duration_seconds", "webhooks_delivery_latency_seconds", *metrics_exporter.GAUGES):
        assert name in families, f"{name} is on no panel"
