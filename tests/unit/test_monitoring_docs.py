"""The monitoring docs stay true: every Flower setting our config reads is documented, every
place that runs Flower has workers sending task events, every exported metric is named."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from webhooks import metrics, metrics_exporter

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MONITORING = (ROOT / "docs" / "monitoring.md").read_text()


def test_every_flower_setting_read_by_our_config_is_documented():
    read = set(re.findall(r"\"(FLOWER_[A-Z_]+)\"", (ROOT / "config" / "flowerconfig.py").read_text()))
    assert {"FLOWER_BASIC_AUTH", "FLOWER_COOKIE_SECRET", "FLOWER_ADDRESS"} <= read
    for name in read:
        assert f"`{name}`" in README, f"{name} is not in the README"
        assert f"`{name}`" in MONITORING, f"{name} is not in docs/monitoring.md"


def test_every_place_that_runs_flower_has_workers_sending_task_events():
    # Workers send task events with -E or WEBHOOKS_WORKER_EVENTS=1 (workers/config.py); the bare
    # command is the same everywhere, so the setting travels with the environment Flower runs in.
    compose = (ROOT / "docker-compose.yml").read_text()
    worker = compose.split("\n  worker:", 1)[1].split("\n  beat:", 1)[0]
    assert 'WEBHOOKS_WORKER_EVENTS: "1"' in compose.split("\n  worker:", 1)[0] + worker or '"-E"' in worker
    env = (ROOT / "config" / "example.env").read_text()
    assert re.search(r"^WEBHOOKS_WORKER_EVENTS=1$", env, re.M), "the Procfile's environment (example.env) sends events"
    for path in ("README.md", "docs/monitoring.md"):
        text = (ROOT / path).read_text()
        assert "WEBHOOKS_WORKER_EVENTS=1" in text, f"{path} does not say how workers send events for Flower"


def test_every_metric_is_documented():
    families = {re.sub(r"_(total|created|bucket|count|sum)$", "", n) for n in metrics.exported_names()}
    for name in families | metrics_exporter.exported_names():
        shown = name + "_total" if name + "_total" in metrics.exported_names() else name
        assert f"`{shown}" in MONITORING, f"{shown} is not in docs/monitoring.md"
        assert f"`{shown}" in README, f"{shown} is not in the README"
