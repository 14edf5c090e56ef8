"""Shared pieces of the CLI: the root group, account option, time and output helpers."""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import click

__all__ = ["cli", "account_option", "json_option", "actor_option", "parse_since", "parse_duration", "emit", "fmt_time"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="chat-webhooks")
def cli() -> None:
    """Operate chat-webhooks: subscriptions, deliveries, dead letters, status."""


def _check_account(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # The account is the tenant boundary: every command refuses a name that is not a plain one.
    from ..ids import check_account

    return check_account(value)


def account_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--account", "-a", required=True, envvar="WEBHOOKS_ACCOUNT", callback=_check_account,
                        help="Account (tenant) the command acts in [env WEBHOOKS_ACCOUNT].")(f)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")(f)


def actor_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--actor", default=None, envvar="WEBHOOKS_ACTOR",
                        help="Who is making the change (recorded in the audit log).")(f)


_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '24h', '7d' -> seconds. Raises click.BadParameter."""
    m = _DUR.match(text or "")
    if not m:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 15m, 24h or 7d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_since(text: str | None) -> float | None:
    """A time: ISO-8601 ('2026-11-26T10:00Z'), unix seconds, or a duration ago ('2h')."""
    if text is None:
        return None
    t = text.strip()
    try:
        return time.time() - parse_duration(t) if t[-1:] in "smhd" else float(t)
    except (click.BadParameter, ValueError):
        pass
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a time (ISO-8601, unix seconds, or a duration ago like 2h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def fmt_time(ts: Any) -> str:
    if ts in (None, ""):
        return "-"
    return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def emit(rows: Iterable[dict[str, Any]], columns: list[tuple[str, str]], as_json: bool) -> None:
    """Print rows as JSON (a list) or as an aligned table with the given (key, title) columns."""
    rows = list(rows)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    table = [[title for _, title in columns]] + [["-" if r.get(k) in (None, "") else str(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
