"""``webhooks status``, ``webhooks audit``, ``webhooks outbox``."""
from __future__ import annotations

import json

import click

from .. import audit as audit_log
from .. import deadletters, ledger, stats
from .. import subscriptions as store
from .common import account_option, cli, emit, json_option, parse_since
from .output import echo_json, fmt_time, safe, typed


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


@cli.command("status")
@account_option
@click.option("--ledger", "show_ledger", is_flag=True, help="Show the delivery ledger (delivered/dead/discarded/pending).")
@click.option("--since", default="24h", show_default=True, help="Ledger window start (ISO-8601, unix, or a duration ago).")
@json_option
def status_cmd(account: str, show_ledger: bool, since: str, as_json: bool) -> None:
    """Per-subscription health: success rate (1 h, 1 d), p50/p95 latency, last error, breaker, queued, dead letters."""
    from ..breaker import CircuitBreaker
    from ..connection import get_redis
    from ..delivery import breaker_config
    from ..settings import get_settings

    breaker = CircuitBreaker(get_redis(), breaker_config(get_settings()))
    since_ts = parse_since(since)
    led = ledger.counts(account, since=since_ts)
    dead = deadletters.list_dead(account, limit=None)
    rows = []
    for sub in store.list_subscriptions(account):
        s = stats.summary(sub.id)
        b = breaker.state(sub.id)
        counts = led["subscriptions"].get(sub.id, {})
        rows.append({
            "id": sub.id, "url": sub.url, "enabled": sub.enabled, "disabled_reason": sub.disabled_reason,
            "success_1h": s["hour"]["rate"], "success_1d": s["day"]["rate"], "p50_ms": s["p50_ms"], "p95_ms": s["p95_ms"],
            "last_error": s["last_error"], "breaker": b.get("state"), "queued": counts.get("pending", 0),
            "dead_letters": sum(1 for d in dead if d["subscription_id"] == sub.id),
        })
    from ..secretsweep import count_plaintext

    plain = count_plaintext(account)
    if plain:
        click.echo(f"warning: {plain} subscription secret(s) of this account are stored in plain text; "
                   "set WEBHOOKS_ENCRYPTION_KEY and run `webhooks secrets encrypt`", err=True)
    if as_json:
        out: dict[str, object] = {"subscriptions": rows, "plaintext_secrets": plain}
        if show_ledger:
            out["ledger"] = {"since": since_ts, **led}
        echo_json(typed(out))
        return
    table = [{**r, "success_1h": _pct(r["success_1h"]), "success_1d": _pct(r["success_1d"]),
              "p50_ms": "-" if r["p50_ms"] is None else f"{r['p50_ms']:.0f}",
              "p95_ms": "-" if r["p95_ms"] is None else f"{r['p95_ms']:.0f}",
              "enabled": "yes" if r["enabled"] else f"no ({safe(r['disabled_reason'])})",
              "last_error": "-" if not r["last_error"] else f"{safe(r['last_error'].get('error'))} at {fmt_time(r['last_error'].get('at'))}"}
             for r in rows]
    emit(table, [("id", "SUBSCRIPTION"), ("enabled", "ENABLED"), ("success_1h", "OK 1H"), ("success_1d", "OK 1D"),
                 ("p50_ms", "P50 MS"), ("p95_ms", "P95 MS"), ("breaker", "BREAKER"), ("queued", "QUEUED"),
                 ("dead_letters", "DEAD"), ("last_error", "LAST ERROR")], False)
    if show_ledger:
        click.echo("")
        click.echo(f"ledger since {fmt_time(since_ts)}:")
        lrows = [{"id": sid, **c} for sid, c in led["subscriptions"].items()] + [{"id": "TOTAL", **led["total"]}]
        emit(lrows, [("id", "SUBSCRIPTION"), ("enqueued", "ENQUEUED"), ("delivered", "DELIVERED"), ("dead", "DEAD"),
                     ("discarded", "DISCARDED"), ("pending", "PENDING"), ("duplicates", "DUPLICATES")], False)


@cli.command("audit")
@account_option
@click.option("--limit", default=50, show_default=True)
@json_option
def audit_cmd(account: str, limit: int, as_json: bool) -> None:
    """Administrative changes in the account, newest first."""
    rows = audit_log.entries(account, limit)
    if not as_json:
        for r in rows:
            r["at"] = fmt_time(r["at"])
            r["changes"] = json.dumps(r["changes"], ensure_ascii=False)
    emit(rows, [("at", "AT"), ("action", "ACTION"), ("subscription_id", "SUBSCRIPTION"), ("actor", "ACTOR"), ("changes", "CHANGES")], as_json)


@cli.group("outbox")
def outbox_group() -> None:
    """The producer outbox (WEBHOOKS_OUTBOX): events spooled while Redis was unreachable."""


@outbox_group.command("status")
@json_option
def outbox_status(as_json: bool) -> None:
    """How many events wait in the spool."""
    from ..outboxing import get_outbox

    ob = get_outbox()
    if ob is None:
        raise click.UsageError("the outbox is off: set WEBHOOKS_OUTBOX to its file")
    n = ob.pending()
    if as_json:
        echo_json({"pending": n})
    else:
        click.echo(f"{n} events spooled")


@outbox_group.command("flush")
@json_option
def outbox_flush(as_json: bool) -> None:
    """Re-publish the spooled events now, in order."""
    from ..outboxing import flush_now

    res = flush_now()
    if res is None:
        raise click.UsageError("the outbox is off: set WEBHOOKS_OUTBOX to its file")
    if as_json:
        echo_json({"sent": res.sent, "remaining": res.remaining, "error": res.error})
    else:
        click.echo(f"sent {res.sent}, remaining {res.remaining}" + (f" (stopped: {safe(res.error)})" if res.error else ""))
    if res.error:
        raise click.exceptions.Exit(1)
