"""The demo's steps: Redis, an HTTPS receiver, a worker, subscriptions, sample chat events,
verified deliveries, a retry, a dead letter and its replay, the ledger; then stop everything.

Run it with ``make demo`` or ``python -m demo [--dir .demo]``.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from webhooks.secretbox import new_key

from . import show
from .processes import ROOT, DemoError, Worker, wait_until
from .footprint import Footprint
from .redisd import RedisHandle, ensure_redis, waiting_consumers

__all__ = ["main"]

EVENT_TYPES = ("conversation.started", "message.sent", "conversation.ended", "rating.submitted", "conversation.assigned")

# chat -> CRM: the docs/transforms.md example, one contact record per ended conversation.
CRM_TRANSFORM: dict[str, Any] = {"mapping": {
    "email": "data.visitor.email",
    "first_name": {"path": "data.visitor.name", "split": " ", "index": 0},
    "notes": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}"},
    "assigned_to": "data.agent.name",
    "last_chat": {"path": "data.ended_at", "format_date": "%d/%m/%Y %H:%M", "tz": "UTC"},
    "source": {"const": "live chat"},
}}

# Slack: only low ratings, as a Slack incoming-webhook message.
SLACK_TRANSFORM: dict[str, Any] = {
    "filter": "type == 'rating.submitted' && data.score <= `2`",
    "template": "slack",
    "text": "Low-satisfaction chat ended: Visitor {data.visitor.name}, Topic: {data.topic || 'no topic'}, "
            "Rating: {data.score} star",
}


@dataclass(frozen=True)
class Endpoint:
    """One subscription the demo creates: its receiver path, event patterns, transform, role."""

    path: str
    events: tuple[str, ...]
    role: str
    transform: dict[str, Any] | None = None


ENDPOINTS = (
    Endpoint("/crm", ("conversation.ended",), "CRM: contact fields mapped from the chat", CRM_TRANSFORM),
    Endpoint("/helpdesk", ("conversation.*",), "helpdesk: every conversation event"),
    Endpoint("/analytics", ("*",), "analytics: every event"),
    Endpoint("/slack", ("rating.submitted",), "Slack: ratings of 2 stars or less, as a message", SLACK_TRANSFORM),
    Endpoint("/flaky", ("message.sent",), "answers 500 once, then 200"),
    Endpoint("/down", ("conversation.ended",), "answers 500 until we fix it"),
)

# Short on purpose, so a dead letter appears in seconds: 4 attempts, 0.5 s, 1 s, 2 s apart.
RETRY_SCHEDULE = "0.5,1,2"
DEADLINE_S = 60.0


@dataclass
class Stack:
    """What the demo started, to stop in reverse order whatever happens."""

    redis: RedisHandle | None = None
    footprint: Footprint | None = None
    account: str = ""
    endpoints: Any = None
    worker: Worker | None = None
    stopped: list[str] = field(default_factory=list)
    cleaned: str = ""

    def stop(self) -> None:
        """Stop the worker and the receiver, remove every key the demo wrote (nothing writes
        any more), stop a Redis we started; idempotent."""
        if self.worker is not None:
            self.worker.stop(grace_s=20.0)
            self.stopped.append("worker")
            self.worker = None
        if self.endpoints is not None:
            self.endpoints.stop()
            self.stopped.append("HTTPS receiver")
            self.endpoints = None
        try:
            from webhooks import outboxing

            outboxing.stop()
        except Exception:  # noqa: BLE001 - stopping must go on; the flusher is a daemon thread
            pass
        if self.footprint is not None and self.redis is not None:
            footprint, self.footprint = self.footprint, None
            try:
                footprint.clean(self.account)
                self.cleaned = (f"removed the {footprint.removed} keys the demo wrote in {footprint.url}"
                                + (f" and its {footprint.restored} entries in keys that were there before"
                                   if footprint.restored else "") + ": the Redis is as the demo found it")
            except redis.RedisError as exc:
                print(f"could not remove the demo's keys from {footprint.url}: {exc}", file=sys.stderr)
        if self.redis is not None:
            if self.redis.child is not None:
                self.redis.stop()
                self.stopped.append("Redis")
            self.redis = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _cli(*args: str) -> str:
    """Run ``webhooks ARGS`` as an operator would (a subprocess); print and return its output."""
    show.say("$ webhooks " + " ".join(args))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([sys.executable, "-m", "webhooks", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    show.detail(done.stdout)
    if done.returncode != 0:
        raise DemoError(f"`webhooks {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _environment(redis_url: str, ca_pem: str, run_dir: Path) -> dict[str, str]:
    return {
        "WEBHOOKS_REDIS_URL": redis_url,
        "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
        "WEBHOOKS_CA_BUNDLE": ca_pem,
        # secrets are encrypted at rest by default: the demo brings a key (or uses yours)
        "WEBHOOKS_ENCRYPTION_KEY": os.environ.get("WEBHOOKS_ENCRYPTION_KEY") or new_key(),
        "WEBHOOKS_OUTBOX": str(run_dir / "outbox.sqlite"),
        "WEBHOOKS_RETRY_SCHEDULE": RETRY_SCHEDULE,
        "WEBHOOKS_CONNECT_TIMEOUT_S": "2",
        "WEBHOOKS_TOTAL_TIMEOUT_S": "5",
    }


def _sample(event_type: str) -> dict[str, Any]:
    from webhooks import events

    data = events.sample(event_type)
    if event_type == "rating.submitted":
        data.update(score=1, topic="Billing", comment="Still charged twice.")
    return data


def _run(run_dir: Path, stack: Stack, redis_url: str | None) -> None:
    account = f"demo-{secrets.token_hex(4)}"
    stack.account = account
    show.say(f"account: {account}   (files: {run_dir})")

    show.step(1, "Redis")
    stack.redis = ensure_redis(redis_url, run_dir)
    stack.footprint = Footprint(stack.redis.url).start()
    how = ("started for the demo, AOF on, stopped at the end" if stack.redis.child
           else "found; the demo writes only its own account and removes every key it wrote at the end")
    show.say(f"{stack.redis.origin}: Redis {stack.redis.version} at {stack.redis.url} ({how})")
    if stack.redis.child is None and waiting_consumers(stack.redis.url):
        show.say("note: other clients (Celery workers?) wait on queues in this database; they may take the demo's "
                 "deliveries and fail them. Point WEBHOOKS_REDIS_URL at a free database, or at nothing answering.")

    show.step(2, "A throwaway CA and an HTTPS receiver on 127.0.0.1")
    from .endpoints import Endpoints, Reply, make_ca, verify_both

    ca = make_ca(run_dir / "ca")
    receiver = Endpoints(ca).start()
    stack.endpoints = receiver
    receiver.script("/flaky", [Reply(status=500, body=b"flaky")])
    receiver.fail("/down")
    show.say(f"CA certificate {ca.ca_pem_path}; receiver at https://127.0.0.1:{receiver.port}")

    show.step(3, "A Celery worker (threads pool, both queues, embedded beat)")
    env = _environment(stack.redis.url, ca.ca_pem_path, run_dir)
    for name, value in env.items():
        show.say(f"{name}={value}")
    os.environ.update(env)
    from webhooks.settings import reload_settings

    reload_settings()
    stack.worker = Worker(dict(os.environ), run_dir, f"demo-{account}").start_and_wait(DEADLINE_S)
    show.say(f"worker ready (log: {stack.worker.log_path})")

    import webhooks
    from webhooks import deadletters, records

    show.step(4, "Subscriptions")
    subs: dict[str, Any] = {}
    by_id: dict[str, Endpoint] = {}
    for ep in ENDPOINTS:
        sub = webhooks.subscriptions.create(account, receiver.url(ep.path), list(ep.events), transform=ep.transform,
                                            description=ep.role)
        subs[ep.path] = sub
        by_id[sub.id] = ep
        show.say(f"{sub.id}  {ep.path:<11} {','.join(ep.events):<21} {ep.role}")

    show.step(5, "Publish sample chat events")
    delivery_ids: list[str] = []
    for event_type in EVENT_TYPES:
        published = webhooks.publish(account, event_type, _sample(event_type))
        delivery_ids += published.delivery_ids
        where = "spooled in the outbox" if published.spooled else f"{published.deliveries} deliveries"
        show.say(f"{event_type:<22} {published.id}  → {where}")

    path_of = {did: by_id[(records.load(did) or {})["sub"]].path for did in delivery_ids}
    down_id = next(did for did, path in path_of.items() if path == "/down")
    flaky_id = next(did for did, path in path_of.items() if path == "/flaky")

    def ended(did: str) -> bool:
        return (records.load(did) or {}).get("status") == "delivered"

    show.step(6, "Deliveries received (signatures checked by webhooks.verify and by standardwebhooks)")
    healthy = [did for did in delivery_ids if did != down_id]
    wait_until(lambda: all(ended(did) for did in healthy), DEADLINE_S, f"{len(healthy)} deliveries")

    def requests_of(did: str) -> list[Any]:
        return [r for r in receiver.requests if r.headers.get("webhook-id") == did]

    for did in sorted(healthy, key=lambda d: requests_of(d)[0].at):
        path = path_of[did]
        last = requests_of(did)[-1]
        verify_both(subs[path].signing_secrets()[0], last)
        kind = (records.load(did) or {}).get("type", "?")
        extra = {"/crm": "  (mapped to CRM fields)", "/slack": "  (Slack message)"}.get(path, "")
        show.say(f"{path:<11} {kind:<22} {did}  signature verified {show.OK}{extra}")
        if path in ("/crm", "/slack"):
            show.detail(show.shorten(last.body.decode("utf-8"), 200), indent=16)

    show.step(7, "A flaky endpoint: retried, same webhook-id")
    attempts = records.attempts(flaky_id)
    for a in attempts:
        show.say(f"/flaky attempt {a['number']}: HTTP {a['status'] or a['error']} → {a['verdict']}")
    ids = {r.headers.get("webhook-id") for r in requests_of(flaky_id)}
    if len(attempts) != 2 or ids != {flaky_id}:
        raise DemoError(f"expected 2 attempts with one webhook-id on /flaky, saw {len(attempts)} and {sorted(map(str, ids))}")
    show.say(f"both requests carried webhook-id {flaky_id}: a receiver de-duplicates on it {show.OK}")

    show.step(8, "A failing endpoint: its delivery becomes a dead letter")
    wait_until(lambda: any(e["delivery_id"] == down_id for e in deadletters.list_dead(account)), DEADLINE_S,
               "the /down delivery to be dead-lettered")
    show.say(f"/down answered 500 on all {len(requests_of(down_id))} attempts (schedule {RETRY_SCHEDULE} s)")
    _cli("dead-letters", "list", "--account", account)

    show.step(9, "The endpoint is fixed: replay the dead letter")
    receiver.recover("/down")
    show.say("/down answers 200 now")
    before = len(requests_of(down_id))
    _cli("dead-letters", "replay", "--account", account, "--all")
    wait_until(lambda: ended(down_id), DEADLINE_S, "the replayed delivery")
    last = requests_of(down_id)[-1]
    if len(requests_of(down_id)) != before + 1 or last.headers.get("webhook-id") != down_id:
        raise DemoError("the replay did not arrive once with the same webhook-id")
    verify_both(subs["/down"].signing_secrets()[0], last)
    show.say(f"/down        conversation.ended     {down_id}  delivered on replay, same webhook-id, "
             f"fresh signature verified {show.OK}")

    show.step(10, "Status and the delivery ledger")
    _cli("status", "--account", account, "--ledger")
    from webhooks.outboxing import get_outbox

    outbox = get_outbox()
    if outbox is not None:
        show.say(f"producer outbox {env['WEBHOOKS_OUTBOX']}: {outbox.pending()} events waiting "
                 "(publish() spools there while Redis cannot be reached)")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every step worked, 1 when one failed, 130 when interrupted."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default=str(ROOT / ".demo"),
                        help="where the demo keeps its files: CA, logs, outbox, a Redis it starts (default .demo/)")
    parser.add_argument("--redis-url", default=os.environ.get("WEBHOOKS_REDIS_URL") or None,
                        help="use this Redis (default: WEBHOOKS_REDIS_URL; unset: a redis-server of the demo's own, "
                             "else database 15 of the local Redis); every key the demo writes is removed at the end")
    args = parser.parse_args(argv)
    show.use_safe_stdout()
    signal.signal(signal.SIGTERM, _interrupt)
    run_dir = Path(args.dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    print("chat-webhooks demo: sample chat events, delivered over HTTPS, signed, retried, dead-lettered, replayed.")
    stack = Stack()
    code = 0
    try:
        _run(run_dir, stack, args.redis_url)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    except (DemoError, redis.RedisError, Exception) as exc:  # noqa: BLE001 - say what failed, then clean up
        from webhooks.errors import WebhooksError

        known = isinstance(exc, (DemoError, WebhooksError, redis.RedisError))
        print(f"\ndemo failed: {exc if known else repr(exc)}", file=sys.stderr)
        if stack.worker is not None:
            print(f"worker log ({stack.worker.log_path}), last lines:\n{stack.worker.log_tail(2000)}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    show.step(11, "Stopped")
    show.say(f"stopped: {', '.join(stack.stopped) or 'nothing was running'}")
    if stack.cleaned:
        show.say(stack.cleaned)
    if code == 0:
        show.say(f"demo complete {show.OK}")
    return code
