"""``webhooks subscriptions …``, ``webhooks send-test``, ``webhooks events``, ``webhooks keygen``."""
from __future__ import annotations

import json
from typing import Any

import click

from .. import subscriptions as store
from .common import (account_option, actor_option, cli, confirm, emit, json_option, load_json, parse_duration,
                     read_limited, yes_option)
from .output import cell, echo_json, fmt_time, safe, typed

_COLUMNS = [("id", "ID"), ("url", "URL"), ("events", "EVENTS"), ("enabled", "ENABLED"), ("description", "DESCRIPTION")]


def _json_arg(text: str | None, name: str) -> Any:
    """JSON given inline or as @FILE (read at most WEBHOOKS_MAX_PAYLOAD_BYTES)."""
    if text is None:
        return None
    if text.startswith("@"):
        return load_json(read_limited(text[1:], name), name)
    return load_json(text, name)


def _headers(pairs: tuple[str, ...]) -> dict[str, str] | None:
    out = {}
    for p in pairs:
        if ":" not in p:
            raise click.BadParameter(f"{p!r} is not NAME:VALUE", param_hint="--header")
        k, v = p.split(":", 1)
        out[k.strip()] = v.strip()
    return out or None


def _transform(filter_: str | None, mapping: str | None, template: str | None, text: str | None, header: tuple[str, ...]) -> dict[str, Any] | None:
    spec = {"filter": filter_, "mapping": _json_arg(mapping, "--mapping"), "template": template, "text": text, "headers": _headers(header)}
    spec = {k: v for k, v in spec.items() if v not in (None, {}, "")}
    return spec or None


def _transform_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--filter", "filter_", help="JMESPath condition on the event; only events where it is true are sent (see docs/transforms.md)."),
        click.option("--mapping", help="Field mapping spec as JSON, or @file.json."),
        click.option("--template", type=click.Choice(["slack", "teams", "discord", "text"]), help="Send a chat message instead of the event."),
        click.option("--text", help="Message template text with {placeholders} (with --template)."),
        click.option("--header", multiple=True, help="Extra static header NAME:VALUE (not secret-bearing); repeatable."),
    ]):
        f = opt(f)
    return f


def _show(sub: store.Subscription, as_json: bool, reveal: bool = False) -> None:
    d = sub.public(reveal=reveal)
    if as_json:
        echo_json(typed(d))
        return
    for key in ("id", "account", "url", "events", "enabled", "disabled_reason", "description", "secret",
                "previous_secrets", "rotation_grace_until", "transform", "retry_schedule", "rate_limit_per_s",
                "created_at", "updated_at"):
        if key not in d:
            continue
        v = d[key]
        if key in ("created_at", "updated_at", "rotation_grace_until"):
            text = fmt_time(v)
        elif isinstance(v, (list, dict)):
            text = safe(json.dumps(v, ensure_ascii=False)) if v else "-"
        else:
            text = cell(v)
        click.echo(f"{key + ':':22} {text}")


@cli.group("subscriptions")
def subscriptions_group() -> None:
    """Create, list, show, update, disable, enable, delete, rotate-secret, preview."""


@subscriptions_group.command("create")
@account_option
@click.option("--url", required=True, help="HTTPS endpoint URL.")
@click.option("--event", "events", multiple=True, required=True, help="Event type, 'prefix.*' or '*'; repeatable.")
@click.option("--secret", default=None, help="Use this whsec_ secret instead of generating one.")
@click.option("--description", default="", help="Free text shown in listings.")
@_transform_options
@click.option("--retry-schedule", default=None, help="Own retry delays, e.g. '0,5s,5m,1h'.")
@click.option("--rate-limit", type=float, default=None, help="At most this many deliveries per second.")
@actor_option
@json_option
def create_cmd(account: str, url: str, events: tuple[str, ...], secret: str | None, description: str, filter_: str | None,
               mapping: str | None, template: str | None, text: str | None, header: tuple[str, ...], retry_schedule: str | None,
               rate_limit: float | None, actor: str | None, as_json: bool) -> None:
    """Create a subscription; prints its secret once."""
    sub = store.create(account, url, list(events), secret=secret, description=description,
                       transform=_transform(filter_, mapping, template, text, header),
                       retry_schedule=retry_schedule, rate_limit_per_s=rate_limit, actor=actor)
    _show(sub, as_json, reveal=True)
    if not as_json:
        click.echo("Keep the secret now: it is shown again only with `subscriptions show --reveal`.", err=True)


@subscriptions_group.command("list")
@account_option
@json_option
def list_cmd(account: str, as_json: bool) -> None:
    """List the account's subscriptions (secrets hidden)."""
    emit([s.public() for s in store.list_subscriptions(account)], _COLUMNS, as_json)


@subscriptions_group.command("show")
@account_option
@click.argument("subscription_id")
@click.option("--reveal", is_flag=True, help="Also print the secret(s).")
@json_option
def show_cmd(account: str, subscription_id: str, reveal: bool, as_json: bool) -> None:
    """Show one subscription."""
    _show(store.get(account, subscription_id), as_json, reveal=reveal)


@subscriptions_group.command("update")
@account_option
@click.argument("subscription_id")
@click.option("--url", default=None)
@click.option("--event", "events", multiple=True, help="Replace the event types; repeatable.")
@click.option("--description", default=None)
@_transform_options
@click.option("--clear-transform", is_flag=True, help="Drop the old filter, mapping, template and headers (keep only the ones given now).")
@click.option("--retry-schedule", default=None)
@click.option("--rate-limit", type=float, default=None)
@actor_option
@json_option
def update_cmd(account: str, subscription_id: str, url: str | None, events: tuple[str, ...], description: str | None,
               filter_: str | None, mapping: str | None, template: str | None, text: str | None, header: tuple[str, ...],
               clear_transform: bool, retry_schedule: str | None, rate_limit: float | None, actor: str | None, as_json: bool) -> None:
    """Change a subscription; only the given options change."""
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = url
    if events:
        changes["events"] = list(events)
    if description is not None:
        changes["description"] = description
    t = _transform(filter_, mapping, template, text, header)
    if clear_transform:
        changes["transform"] = t  # what is given replaces the old transform whole
    elif t is not None:
        current = store.get(account, subscription_id).transform or {}
        changes["transform"] = {**current, **t}
    if retry_schedule is not None:
        changes["retry_schedule"] = retry_schedule
    if rate_limit is not None:
        changes["rate_limit_per_s"] = rate_limit
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")
    _show(store.update(account, subscription_id, actor=actor, **changes), as_json)


def _state_result(sub: store.Subscription, changed: bool, as_json: bool, word: str) -> None:
    if as_json:
        echo_json({"id": sub.id, "enabled": sub.enabled, "disabled_reason": sub.disabled_reason, "changed": changed})
    elif changed:
        click.echo(f"{sub.id} {word}")
    else:
        click.echo(f"{sub.id} was already {word}; nothing changed")


@subscriptions_group.command("disable")
@account_option
@click.argument("subscription_id")
@click.option("--reason", default=None, help="Why (shown in listings and the audit log).")
@actor_option
@json_option
def disable_cmd(account: str, subscription_id: str, reason: str | None, actor: str | None, as_json: bool) -> None:
    """Stop delivering to a subscription (a disabled one stays as it is: no audit entry)."""
    before = store.get(account, subscription_id)
    sub = store.disable(account, subscription_id, reason=reason, actor=actor)
    _state_result(sub, before.enabled, as_json, "disabled")


@subscriptions_group.command("enable")
@account_option
@click.argument("subscription_id")
@click.option("--recover", "recover_since", default=None, metavar="TIME",
              help="Also replay its dead letters since TIME (e.g. 24h, ISO-8601).")
@actor_option
@json_option
def enable_cmd(account: str, subscription_id: str, recover_since: str | None, actor: str | None, as_json: bool) -> None:
    """Deliver to a subscription again (optionally recovering what failed meanwhile); an
    enabled one stays as it is (no audit entry)."""
    from .. import deadletters
    from .common import parse_since

    since_ts = parse_since(recover_since)
    before = store.get(account, subscription_id)
    sub = store.enable(account, subscription_id, actor=actor)
    if recover_since is None:
        _state_result(sub, not before.enabled, as_json, "enabled")
        return
    res = deadletters.replay(account, subscription_id=subscription_id, since=since_ts, actor=actor)
    if as_json:
        echo_json({"id": sub.id, "enabled": True, "disabled_reason": None, "changed": not before.enabled,
                   "recovered": {"replayed": len(res["replayed"]), "skipped": len(res["skipped"])}})
        return
    _state_result(sub, not before.enabled, False, "enabled")
    click.echo(f"recovered: {len(res['replayed'])} re-sent, {len(res['skipped'])} skipped")


@subscriptions_group.command("delete")
@account_option
@click.argument("subscription_id")
@yes_option
@actor_option
@json_option
def delete_cmd(account: str, subscription_id: str, yes: bool, actor: str | None, as_json: bool) -> None:
    """Delete a subscription (pending deliveries are discarded; asks first on a terminal unless --yes)."""
    sub = store.get(account, subscription_id)
    confirm(f"Delete subscription {sub.id} ({safe(sub.url)}) for good?", yes)
    store.delete(account, subscription_id, actor=actor)
    if as_json:
        echo_json({"id": sub.id, "deleted": True})
    else:
        click.echo(f"{subscription_id} deleted")


@subscriptions_group.command("rotate-secret")
@account_option
@click.argument("subscription_id")
@click.option("--grace", default="24h", show_default=True, help="How long the old secret keeps signing (at most 7d).")
@actor_option
@json_option
def rotate_cmd(account: str, subscription_id: str, grace: str, actor: str | None, as_json: bool) -> None:
    """Replace the secret; both sign during the grace period. Prints the new secret once."""
    sub = store.rotate_secret(account, subscription_id, grace_s=parse_duration(grace), actor=actor)
    _show(sub, as_json, reveal=True)


@subscriptions_group.command("preview")
@account_option
@click.argument("subscription_id")
@click.option("--event-file", "event_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="JSON file: an envelope or {type, data} (read up to WEBHOOKS_MAX_PAYLOAD_BYTES).")
@click.option("--event", "old_event_file", type=click.Path(dir_okay=False), metavar="FILE", hidden=True,
              help="Deprecated alias of --event-file.")
@click.option("--sample", "sample_type", default=None, help="Use the sample event of this type (see `webhooks events`).")
@json_option
def preview_cmd(account: str, subscription_id: str, event_file: str | None, old_event_file: str | None,
                sample_type: str | None, as_json: bool) -> None:
    """Show whether an event would be sent (event types and filter) and the exact body and headers (nothing is sent).

    The event is checked as publish() checks it (schema, WEBHOOKS_MAX_PAYLOAD_BYTES): one
    publish() would refuse is refused here too (exit 2)."""
    from ..preview import preview

    if old_event_file is not None:
        click.echo("warning: --event is deprecated in preview; use --event-file FILE", err=True)
        if event_file is not None:
            raise click.UsageError("give --event-file FILE once (--event is its deprecated alias)")
        event_file = old_event_file
    if bool(event_file) == bool(sample_type):
        raise click.UsageError("give exactly one of --event-file FILE or --sample TYPE")
    raw = _json_arg(f"@{event_file}", "--event-file") if event_file else None
    result = preview(store.get(account, subscription_id), raw_event=raw, sample_type=sample_type)
    if as_json:
        echo_json(result)
        return
    for problem in result.get("problems", []):
        click.echo(f"warning: {safe(problem)}", err=True)
    click.echo(f"passes filter: {'yes' if result['accepted'] else 'no'}" + ("" if result["accepted"] else f" ({safe(result['reason'])})"))
    if result["accepted"]:
        click.echo("headers:")
        for k, v in result["headers"].items():
            click.echo(f"  {safe(k)}: {safe(v)}")
        click.echo("body:")
        click.echo(safe(result["body"]))


@cli.command("send-test")
@account_option
@click.argument("subscription_id")
@json_option
def send_test_cmd(account: str, subscription_id: str, as_json: bool) -> None:
    """Send a webhook.test event to one subscription now, through the real delivery path; print the outcome."""
    from ..preview import send_test

    result = send_test(store.get(account, subscription_id))
    if as_json:
        echo_json(typed(result))
    elif result["ok"]:
        click.echo(f"delivered: HTTP {result['status']} in {result['duration_ms']:.0f} ms (webhook-id {result['delivery_id']})")
    else:
        what = f"HTTP {result['status']}" if result.get("status") else safe(result.get("error"))
        click.echo(f"failed: {what} in {result['duration_ms']:.0f} ms (webhook-id {result['delivery_id']})")
    if not result["ok"]:
        raise click.exceptions.Exit(1)


@cli.command("events")
@json_option
def events_cmd(as_json: bool) -> None:
    """List the event types of the catalogue."""
    from ..events import EVENT_TYPES

    types = list(EVENT_TYPES) + ["custom.<name>"]
    if as_json:
        echo_json(types)
    else:
        click.echo("\n".join(types))


@cli.command("keygen")
def keygen_cmd() -> None:
    """Print a new key for WEBHOOKS_ENCRYPTION_KEY."""
    from ..secretbox import new_key

    click.echo(new_key())
