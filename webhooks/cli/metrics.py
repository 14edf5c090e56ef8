"""``webhooks metrics``: the one exporter of the Redis-side gauges (webhooks/metrics_exporter.py)."""
from __future__ import annotations

import signal
import threading
from typing import Any

import click

from .common import cli


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    from ..connection import get_redis
    from ..metrics_exporter import RedisCollector
    from ..settings import get_settings

    registry = CollectorRegistry(auto_describe=True)
    registry.register(RedisCollector(get_redis, per_account=get_settings().metrics_per_account))
    return registry


@cli.command("metrics")
@click.option("--port", default=9808, show_default=True, type=click.IntRange(1, 65535),
              help="Port to serve /metrics on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 inside a container).")
@click.option("--once", is_flag=True, help="Print one scrape (Prometheus text) to stdout and exit.")
def metrics_cmd(port: int, address: str, once: bool) -> None:
    """Serve the fleet's Redis-side gauges for Prometheus: queue depths, parked retries, in flight,
    dead letters, open breakers, disabled subscriptions. Run ONE per deployment (workers serve
    their own counters on WEBHOOKS_METRICS_PORT)."""
    from prometheus_client import generate_latest, start_http_server

    registry = _registry()
    if once:
        click.echo(generate_latest(registry).decode(), nl=False)
        return
    try:
        server, _thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {address}:{port} ({exc.strerror or exc})") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"serving the Redis-side gauges on http://{address}:{port}/metrics (Ctrl-C to stop)", err=True)
    stop.wait()
    server.shutdown()
