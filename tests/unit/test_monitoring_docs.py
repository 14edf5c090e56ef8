"""The monitoring docs stay true: every Flower setting our config reads is documented, every
worker command where Flower is expected sends task events (-E), every exported metric is named."""
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


def test_every_worker_command_sends_task_events_for_flower():
    commands = []
    for path in ("README.md", "Makefile", "Procfile", "docs/monitoring.md"):
        for line in (ROOT / path).read_text().splitlines():
            if "celery -A workers worker" in line:
                commands.append((path, line.split("#", 1)[0]))
    compose = (ROOT / "docker-compose.yml").read_text()
    assert '"-E"' in compose.split("worker:", 1)[1].split("beat:", 1)[0]
    assert commands
    for path, command in commands:
        assert "-E" in shlex.split(command.replace("$(VENV)/bin/", "")), f"{path}: {command.strip()} lacks -E"


def test_every_metric_is_documented():
    families = {re.sub(r"_(total|created|bucket|count|sum)$", "", n) for n in metrics.exported_names()}
    for name in families | metrics_exporter.exported_names():
        shown = name + "_total" if name + "_total" in metrics.exported_names() else name
        assert f"`{shown}" in MONITORING, f"{shown} is not in docs/monitoring.md"
        assert f"`{shown}" in README, f"{shown} is not in the README"
