"""Shared pieces of the CLI: the root group, account option, time and output helpers."""
from __future__ import annotations

import json
import math
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import click

from .output import echo_json, fmt_time, table, typed

__all__ = ["cli", "account_option", "json_option", "actor_option", "yes_option", "parse_since", "parse_duration", "emit",
           "fmt_time", "confirm", "read_limited", "load_json", "InputError"]


class InputError(click.ClickException):
    """Bad input found after the options were parsed (a file, a time, JSON): one sentence on
    stderr, exit 2, no usage text."""

    exit_code = 2

    def __init__(self, message: str, param_hint: str | None = None) -> None:
        super().__init__(f"{param_hint}: {message}" if param_hint else message)

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


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


def yes_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (asked only on a terminal).")(f)


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` before a destructive change, on a terminal only, unless ``--yes``.

    Off a terminal (a script, a pipe, cron) nothing is asked and the command goes on: the
    behaviour ``dead-letters purge`` always had. A "no" aborts with exit 1.
    """
    if not yes and sys.stdin.isatty():
        click.confirm(question, abort=True)


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '24h', '7d' -> seconds. Raises InputError."""
    m = _DUR.match(text or "")
    if not m:
        raise InputError(f"{text!r} is not a duration like 30s, 15m, 24h or 7d")
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(value):
        raise InputError(f"{text!r} is not a finite duration")
    return value


def parse_since(text: str | None) -> float | None:
    """A time: ISO-8601 ('2026-11-26T10:00Z'), unix seconds, or a duration ago ('2h').
    Raises InputError (a usage error, exit 2) for anything else, NaN and infinities too."""
    if text is None:
        return None
    t = text.strip()
    try:
        value = time.time() - parse_duration(t) if t[-1:] in "smhd" else float(t)
    except (InputError, ValueError):
        pass
    else:
        if not math.isfinite(value):
            raise InputError(f"{text!r} is not a time (ISO-8601, unix seconds, or a duration ago like 2h)")
        return value
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{text!r} is not a time (ISO-8601, unix seconds, or a duration ago like 2h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def emit(rows: Iterable[dict[str, Any]], columns: list[tuple[str, str]], as_json: bool) -> None:
    """Print rows as typed JSON (a list) or as an aligned table with the given (key, title) columns."""
    rows = list(rows)
    if as_json:
        echo_json(typed(rows))
    else:
        table(rows, columns)


def read_limited(path: str, what: str) -> bytes:
    """The bytes of file ``path``, at most WEBHOOKS_MAX_PAYLOAD_BYTES (``/dev/zero`` or a 10 GB
    file costs one bounded read). Raises InputError (exit 2) naming ``what``."""
    from ..settings import get_settings

    limit = get_settings().max_payload_bytes
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", param_hint=what) from None
    if len(data) > limit:
        raise InputError(f"{path} is larger than WEBHOOKS_MAX_PAYLOAD_BYTES ({limit} bytes)", param_hint=what)
    return data


def load_json(text: str | bytes, what: str) -> Any:
    """Parse JSON from the command line or a file; one-sentence errors (exit 2), never a traceback."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", param_hint=what) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", param_hint=what) from None
    except RecursionError:
        raise InputError("JSON nested too deeply", param_hint=what) from None
