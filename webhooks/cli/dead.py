"""``webhooks dead-letters list|show|replay|purge`` and ``webhooks deliveries``."""
from __future__ import annotations

import sys

import click

from .. import deadletters, records
from .common import account_option, actor_option, cli, confirm, emit, json_option, parse_since, yes_option
from .output import cell, echo_json, fmt_time, safe, typed, typed_delivery

_DL_COLUMNS = [("delivery_id", "DELIVERY"), ("subscription_id", "SUBSCRIPTION"), ("type", "TYPE"), ("reason", "REASON"),
               ("status", "STATUS"), ("attempts", "ATTEMPTS"), ("died", "DIED")]


@cli.group("dead-letters")
def dead_group() -> None:
    """Deliveries that never got through: list, show, replay, purge."""


def _selection(f):  # type: ignore[no-untyped-def]
    f = click.option("--since", default=None, metavar="TIME", help="Only those that died since TIME (ISO-8601, unix, or '2h' ago).")(f)
    f = click.option("--subscription", "subscription_id", default=None, help="Only this subscription's.")(f)
    return f


@dead_group.command("list")
@account_option
@_selection
@click.option("--limit", default=100, show_default=True)
@json_option
def list_cmd(account: str, subscription_id: str | None, since: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first."""
    rows = deadletters.list_dead(account, subscription_id=subscription_id, since=parse_since(since), limit=limit)
    if not as_json:
        for r in rows:
            r["died"] = fmt_time(r["died_at"])
    emit(rows, _DL_COLUMNS, as_json)


@dead_group.command("show")
@account_option
@click.argument("delivery_id")
@json_option
def show_cmd(account: str, delivery_id: str, as_json: bool) -> None:
    """Show one dead letter and its attempts."""
    entry = deadletters.get(account, delivery_id)
    entry["attempt_log"] = records.attempts(delivery_id)
    if as_json:
        echo_json(typed(entry))
        return
    for k, v in entry.items():
        if k == "attempt_log":
            continue
        click.echo(f"{safe(k) + ':':18} {fmt_time(v) if k in ('created', 'died_at') else cell(v)}")
    click.echo("attempts:")
    for a in entry["attempt_log"]:
        click.echo(f"  #{a['number']} {fmt_time(a['at'])} {cell(a['status'] or a['error'])} {a['duration_ms']:.0f} ms")


@dead_group.command("replay")
@account_option
@click.argument("delivery_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter of the account.")
@_selection
@actor_option
@json_option
def replay_cmd(account: str, delivery_ids: tuple[str, ...], all_: bool, subscription_id: str | None, since: str | None,
               actor: str | None, as_json: bool) -> None:
    """Re-send dead letters (same webhook-id, fresh signature) to their own subscription."""
    if not (delivery_ids or all_ or subscription_id or since):
        raise click.UsageError("say which: DELIVERY_ID..., --all, --subscription ID or --since TIME")
    chosen = None if delivery_ids else deadletters.list_dead(account, subscription_id=subscription_id, since=parse_since(since), limit=None)
    bar = None
    if chosen is not None and sys.stderr.isatty() and not as_json and len(chosen) > 1:
        bar = click.progressbar(length=len(chosen), label="replaying", file=sys.stderr)
        bar.__enter__()
    try:
        if chosen is not None and not chosen:  # the selection is empty: nothing to replay is not an error
            result = deadletters.ReplayResult(replayed=[], skipped={})
        else:
            result = deadletters.replay(account, list(delivery_ids) or [e["delivery_id"] for e in chosen or []],
                                        actor=actor, progress=(lambda _id: bar.update(1)) if bar else None)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        echo_json(typed(dict(result)))
    else:
        click.echo(f"replayed {len(result['replayed'])}, skipped {len(result['skipped'])}")
        for did, why in result["skipped"].items():
            click.echo(f"  skipped {safe(did)}: {safe(why)}", err=True)
    if result["skipped"] and not result["replayed"]:
        raise click.exceptions.Exit(1)


@dead_group.command("purge")
@account_option
@click.argument("delivery_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every dead letter of the account.")
@_selection
@yes_option
@actor_option
@json_option
def purge_cmd(account: str, delivery_ids: tuple[str, ...], all_: bool, subscription_id: str | None, since: str | None,
              yes: bool, actor: str | None, as_json: bool) -> None:
    """Delete dead letters for good (asks first on a terminal unless --yes)."""
    if not (delivery_ids or all_ or subscription_id or since):
        raise click.UsageError("say which: DELIVERY_ID..., --all, --subscription ID or --since TIME")
    since_ts = parse_since(since)
    confirm("Delete these dead letters for good?", yes)
    n = deadletters.purge(account, list(delivery_ids) or None, all_=all_, subscription_id=subscription_id,
                          since=since_ts, actor=actor)
    if as_json:
        echo_json({"purged": n})
    else:
        click.echo(f"purged {n}")


@cli.command("deliveries")
@account_option
@click.option("--subscription", "subscription_id", default=None)
@click.option("--failed", is_flag=True, help="Only deliveries that failed at least once or are dead.")
@click.option("--limit", default=50, show_default=True)
@click.option("--attempts", "with_attempts", is_flag=True, help="Include each delivery's attempt log.")
@json_option
def deliveries_cmd(account: str, subscription_id: str | None, failed: bool, limit: int, with_attempts: bool, as_json: bool) -> None:
    """Recent deliveries, newest first."""
    rows = [typed_delivery(r) for r in records.list_for_account(account, subscription_id=subscription_id, failed=failed, limit=limit)]
    for r in rows:
        if with_attempts:
            r["attempt_log"] = records.attempts(r["id"])
        if not as_json:
            r["created"] = fmt_time(r.get("created"))
    emit(rows, [("id", "DELIVERY"), ("sub", "SUBSCRIPTION"), ("type", "TYPE"), ("status", "STATUS"), ("attempts", "ATTEMPTS"),
                ("last_status", "LAST"), ("last_error", "ERROR"), ("created", "CREATED")], as_json)
