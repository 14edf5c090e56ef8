"""`make monitor`: the Prometheus metrics of a real worker and of the exporter, after a few
deliveries (one retried, one dead-lettered); with --serve, kept running for Prometheus/Grafana.

Run it with ``make monitor`` or ``python -m demo.monitor [--dir .demo] [--serve]``.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from . import show
from .processes import ROOT, Child, DemoError, Worker, wait_until
from .redisd import ensure_redis

__all__ = ["main"]

DEADLINE_S = 60.0
# Worker series worth showing: counters and histogram totals (no buckets, no _created).
_SHOWN = ("webhooks_attempts_total", "webhooks_deliveries_ended_total", "webhooks_retries_scheduled_total",
          "webhooks_attempt_duration_seconds_count", "webhooks_attempt_duration_seconds_sum",
          "webhooks_delivery_latency_seconds_count", "webhooks_delivery_latency_seconds_sum",
          "webhooks_breaker_transitions_total")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def _lines(text: str, names: tuple[str, ...] | None = None) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith("webhooks_"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if names is None or (name in names and not line.endswith(" 0.0")):
            out.append(line)
    return out


def _run(run_dir: Path, serve: bool, children: list[Any]) -> None:
    import secrets

    account = f"monitor-{secrets.token_hex(4)}"
    show.step(1, "Redis, an HTTPS receiver, a worker serving /metrics, the exporter")
    redis_handle = ensure_redis(os.environ.get("WEBHOOKS_REDIS_URL", "redis://127.0.0.1:6379/0"), run_dir)
    children.append(redis_handle)
    from .endpoints import Endpoints, Reply, make_ca

    ca = make_ca(run_dir / "ca")
    receiver = Endpoints(ca).start()
    children.append(receiver)
    receiver.script("/flaky", [Reply(status=500, body=b"flaky")])
    receiver.fail("/down")
    from webhooks.secretbox import new_key

    worker_port, exporter_port = _free_port(), _free_port()
    env = {"WEBHOOKS_REDIS_URL": redis_handle.url, "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
           "WEBHOOKS_CA_BUNDLE": ca.ca_pem_path, "WEBHOOKS_RETRY_SCHEDULE": "0.5,1",
           "WEBHOOKS_TOTAL_TIMEOUT_S": "5", "WEBHOOKS_CONNECT_TIMEOUT_S": "2",
           "WEBHOOKS_METRICS_PORT": str(worker_port),
           # signing secrets are stored encrypted: a throwaway key unless one is set
           "WEBHOOKS_ENCRYPTION_KEY": os.environ.get("WEBHOOKS_ENCRYPTION_KEY") or new_key()}
    os.environ.update(env)
    from webhooks.settings import reload_settings

    reload_settings()
    worker = Worker(dict(os.environ), run_dir, f"monitor-{account}").start_and_wait(DEADLINE_S)
    children.append(worker)
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    exporter = Child([sys.executable, "-m", "webhooks", "metrics", "--port", str(exporter_port)], run_dir / "exporter.log",
                     {**os.environ, "PYTHONPATH": pythonpath}).start()
    children.append(exporter)
    show.say(f"worker /metrics:   http://127.0.0.1:{worker_port}/metrics   (WEBHOOKS_METRICS_PORT={worker_port})")
    show.say(f"exporter /metrics: http://127.0.0.1:{exporter_port}/metrics   (webhooks metrics --port {exporter_port})")

    show.step(2, "Deliveries: three healthy, one retried (500 then 200), one dead-lettered (500 every time)")
    import webhooks
    from webhooks import events

    for path in ("/ok", "/flaky", "/down"):
        webhooks.subscriptions.create(account, receiver.url(path), ["conversation.ended"] if path != "/ok" else ["*"])
    for event_type in ("conversation.started", "message.sent", "conversation.ended"):
        webhooks.publish(account, event_type, events.sample(event_type))

    def worker_says(name: str, labels: str, value: float) -> bool:
        try:
            return f"{name}{{{labels}}} {value}" in _scrape(worker_port)
        except OSError:
            return False

    wait_until(lambda: worker_says("webhooks_deliveries_ended_total", 'outcome="delivered"', 4.0)
               and worker_says("webhooks_deliveries_ended_total", 'outcome="dead"', 1.0), DEADLINE_S,
               "4 deliveries delivered and 1 dead-lettered")

    show.step(3, f"$ curl -s http://127.0.0.1:{worker_port}/metrics   (the worker's counters, non-zero)")
    for line in _lines(_scrape(worker_port), _SHOWN):
        show.detail(line, indent=2)
    show.step(4, f"$ curl -s http://127.0.0.1:{exporter_port}/metrics   (the Redis-side gauges, one exporter)")
    wait_until(lambda: bool(_lines(_scrape(exporter_port))), 20, "the exporter to answer")
    for line in _lines(_scrape(exporter_port)):
        show.detail(line, indent=2)
    show.say("Prometheus + Grafana with the dashboard: docker compose --profile monitoring up -d (docs/monitoring.md)")
    if serve:
        show.say("serving until Ctrl-C: point a Prometheus at the two URLs above")
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run it; 0 when every step worked, 1 when one failed, 130 when interrupted."""
    parser = argparse.ArgumentParser(prog="python -m demo.monitor", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default=str(ROOT / ".demo"), help="where to keep files (CA, logs, a Redis it starts)")
    parser.add_argument("--serve", action="store_true", help="keep everything running until Ctrl-C")
    args = parser.parse_args(argv)
    show.use_safe_stdout()
    signal.signal(signal.SIGTERM, _interrupt)
    run_dir = Path(args.dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    print("chat-webhooks monitor: the metrics a worker and the exporter serve, after real deliveries.")
    children: list[Any] = []
    code = 0
    try:
        _run(run_dir, args.serve, children)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # noqa: BLE001 - say what failed, then clean up
        print(f"\nmonitor failed: {exc if isinstance(exc, DemoError) else repr(exc)}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in reversed(children):
            try:
                child.stop()
            except Exception:  # noqa: BLE001 - stop the rest
                pass
        signal.signal(signal.SIGINT, signal.default_int_handler)
    show.say("stopped" if code == 0 else f"stopped (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
