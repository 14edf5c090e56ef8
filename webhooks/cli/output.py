"""How the CLI prints: one typed JSON vocabulary for ``--json`` and safe, aligned tables for people.

JSON (a stable format, see docs/cli.md): numbers are numbers, booleans are booleans, absent
values are ``null``, and every time is an ISO 8601 UTC string with milliseconds
(``2026-12-01T09:46:43.123Z``). Redis hands records back as text; ``typed`` turns them into
that vocabulary by field name, so every command agrees on what ``created`` or ``attempts`` is.

Human output escapes control characters in anything that came from storage or a user
(descriptions, actors, errors, URLs): an ANSI sequence or a newline in a stored field is shown
as ``\\x1b`` / ``\\n`` and can neither erase a row nor forge a line.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Iterable

import click

__all__ = ["TIME_FIELDS", "INT_FIELDS", "FLOAT_FIELDS", "iso", "typed", "typed_delivery", "safe", "cell",
           "echo_json", "table", "fmt_time"]

# Fields that hold a time (unix seconds in storage) wherever they appear.
TIME_FIELDS = frozenset({
    "at", "created", "updated", "created_at", "updated_at", "died_at", "rotation_grace_until", "opened_at",
    "retry_at", "last_ok", "since", "until", "due", "due_at", "next_at", "parked_until", "started_at", "delivered_at",
})
# Fields stored as text in a Redis hash that are integers / numbers.
INT_FIELDS = frozenset({"attempts", "retries", "last_status", "status", "duplicates", "number", "replays", "reconciled", "v"})
FLOAT_FIELDS = frozenset({"duration_ms", "rate_limit_per_s"})
# Fields holding a user's own JSON (a transform spec, event data): passed through untouched.
OPAQUE_FIELDS = frozenset({"transform", "data"})

# C0 controls, DEL, C1 controls, and the bidirectional overrides that reorder a line on screen.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def iso(ts: Any) -> str | None:
    """Unix seconds (number or numeric text) as ISO 8601 UTC with milliseconds; None for empty."""
    if ts is None or ts == "" or isinstance(ts, bool):
        return None
    if isinstance(ts, str):
        try:
            ts = float(ts)
        except ValueError:
            return ts  # already a formatted time (e.g. an event timestamp): leave it
    if not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return None
    dt = datetime.fromtimestamp(float(ts), timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: Any, kind: type) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value
    try:
        f = float(value)
    except ValueError:
        return value
    if kind is int and f.is_integer():
        return int(f)
    return f


def typed(value: Any, key: str | None = None) -> Any:
    """``value`` in the JSON vocabulary: times (by field name) as ISO strings, numeric text as
    numbers for the numeric fields, nested dicts and lists converted the same way."""
    if key in OPAQUE_FIELDS:
        return value
    if isinstance(value, dict):
        return {k: typed(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [typed(v) for v in value]
    if key in TIME_FIELDS and (isinstance(value, (int, float, str)) and not isinstance(value, bool)):
        return iso(value)
    if key in INT_FIELDS and isinstance(value, str):
        return _number(value, int)
    if key in FLOAT_FIELDS and isinstance(value, str):
        return _number(value, float)
    return value


def typed_delivery(record: dict[str, Any]) -> dict[str, Any]:
    """A delivery record (all text in Redis) in the JSON vocabulary: empty text is null."""
    return typed({k: (None if v == "" else v) for k, v in record.items()})


def safe(text: Any) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\n``, ``\\u202e``)."""
    s = str(text)
    if not _UNSAFE.search(s):
        return s
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                            else f"\\u{ord(m.group()):04x}"), s)


def fmt_time(ts: Any) -> str:
    """A time for people: ``2026-12-01 09:46:43Z``, or ``-``."""
    text = iso(ts)
    if text is None:
        return "-"
    if len(text) == 24 and text[10] == "T":
        return f"{text[:10]} {text[11:19]}Z"
    return safe(text)


def cell(value: Any) -> str:
    """One table cell: yes/no for booleans, ``-`` for nothing, lists joined by commas, escaped."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return safe(",".join(str(v) for v in value)) if value else "-"
    if isinstance(value, dict):
        return safe(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return safe(value)


def echo_json(value: Any) -> None:
    """Print ``value`` (already typed) as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False))


def table(rows: Iterable[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """Print rows as a table with aligned columns; ``(none)`` when there are none."""
    rows = list(rows)
    if not rows:
        click.echo("(none)")
        return
    grid = [[title for _, title in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in grid) for i in range(len(columns))]
    for row in grid:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
