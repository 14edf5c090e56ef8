"""``webhooks trigger TYPE``: publish a sample (or given) event through the real publish path."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import account_option, cli, json_option


def _load(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path} ({exc.strerror})", param_hint="--data") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"{path} is not JSON ({exc})", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a JSON object (the event's data)", param_hint="--data")
    return data


@cli.command("trigger")
@click.argument("event_type", metavar="TYPE")
@account_option
@click.option("--data", "data_path", default=None, metavar="FILE",
              help="JSON object to send as the event's data ('-' for stdin); default: the type's sample.")
@json_option
def trigger_cmd(event_type: str, account: str, data_path: str | None, as_json: bool) -> None:
    """Publish one TYPE event for the account, as your backend's webhooks.publish() would, and print
    the delivery ids it enqueued (one per matching subscription). Pair with `webhooks listen`."""
    import webhooks
    from ..events import sample

    data = _load(data_path) if data_path else sample(event_type)
    published = webhooks.publish(account, event_type, data)
    if as_json:
        click.echo(json.dumps({"event_id": published.id, "type": published.type, "account": published.account,
                               "delivery_ids": list(published.delivery_ids), "spooled": published.spooled}))
        return
    how = " (spooled in the outbox: Redis unreachable)" if published.spooled else ""
    click.echo(f"published {published.id} ({published.type}) for account {account}: "
               f"{published.deliveries} deliveries{how}")
    for delivery_id in published.delivery_ids:
        click.echo(delivery_id)
