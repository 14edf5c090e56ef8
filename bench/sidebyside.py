"""Our worker against the plain Celery task a typical user writes, side by side, in one run.

    python -m bench.sidebyside [--deliveries 6000] [--runs 3] [--subscriptions 10] [--quick]

Both sides get the same of everything: one private ``redis-server`` (the repository's
config, AOF; plain task in database 1, ours in database 0, one side at a time), one HTTPS
receiver (nginx with ``return 200`` and keep-alive when installed, else a one-process
asyncio server), the same body (the ``message.sent`` sample envelope, compact JSON), the
same number of URLs (``--subscriptions``, one path each), the same worker command
(``celery -A <app> worker -P threads -c 32 -l INFO``: the Procfile's, INFO being the level a
production worker runs at; ``-E`` only in its row), and the same warm-up. Runs alternate
plain, ours, plain, ours ... (ours first in every other run) so a drift in the machine's load hits both.

Rows (medians over ``--runs``; ``ours ÷ plain`` is the ratio of the medians):

* deliveries/s: WARMUP + N deliveries are enqueued before the worker starts (ours:
  ``webhooks.publish`` of events to the K subscriptions; plain: one ``apply_async`` per URL
  per event, the payload in the arguments). The first WARMUP deliveries absorb the worker's
  start (imports, connections, TLS handshakes); the rate is N / (receipt time of delivery
  WARMUP+N − receipt time of delivery WARMUP), both read from the receiver's access log.
  Rows: one worker, one worker with ``-E`` (task events, as Flower needs), two workers
  (two processes).
* CPU and Redis figures are deltas over that same window (read when the bench sees the
  WARMUP-th and the last delivery, divided by the deliveries between the two readings),
  from the one-worker runs:
  - worker CPU µs per delivery: utime+stime (``/proc/<pid>/stat``, via psutil) of the
    worker's process tree;
  - Redis CPU µs per delivery: ``INFO cpu`` used_cpu_user+used_cpu_sys of the server;
  - Redis commands per delivery: the sum of ``INFO commandstats`` calls (commands a Lua
    script runs are counted there too), without the bench's own INFO; the top-level
    EVAL/EVALSHA count is printed apart;
  - round trips per delivery: ``INFO stats`` total_reads_processed, the number of read
    events Redis served on client sockets. A client sends a command or a whole pipeline
    and waits for the answer, so each round trip is (at least) one read; a pipeline or a
    script is one. It slightly over-counts (a large request split across two reads) and
    includes the idle polling of every connection (BRPOP timeouts, heartbeats) in the
    window, which is part of what a worker costs;
  - receiver CPU µs per delivery: the receiver process's utime+stime, to show it is not
    the bottleneck (it should be a small fraction of the worker's).
* end-to-end p50/p99: one worker, warmed up, then deliveries published at a steady rate of
  half that side's measured one-worker rate (or ``--latency-rate``) for
  ``--latency-seconds``; latency = the receiver's log time of a delivery − the time just
  before its event was published (ours: ``publish()``; plain: the first of its
  ``apply_async`` calls), matched by webhook-id (ours: the delivery id ``publish`` returns;
  plain: the event id the task sends as webhook-id).

The machine's load is printed: on a shared machine the absolute figures move run to run;
the ratios, measured in alternation, move less.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .common import percentile
from .harness.counters import Snapshot, snapshot
from .harness.receiver import AccessLog, Receiver, start_receiver
from .harness.redisproc import PrivateRedis
from .harness.workerproc import CeleryWorker

__all__ = ["main"]

EVENT_TYPE = "message.sent"
ROWS = ("one", "events", "two")
ROW_TITLES = {"one": "deliveries/s, one worker", "events": "same with `-E` (task events, for Flower)",
              "two": "two workers (two processes)"}


# --------------------------------------------------------------------------- the two sides

class Side:
    """One of the two systems under test: how to reset it, enqueue and publish, and run its worker."""

    name: str
    app: str
    queues: str
    db: int

    def __init__(self, redis: PrivateRedis, receiver: Receiver, k: int) -> None:
        self.redis = redis
        self.receiver = receiver
        self.k = k
        self.urls = [receiver.url(f"/{self.name}/{i}") for i in range(k)]

    def reset(self) -> None:
        """Empty this side's database (the bench's own server) and set its subscriptions up again."""
        self.redis.client(self.db).flushdb()

    def publish_event(self) -> list[str]:
        """Publish one event to the K URLs now; returns the webhook-ids its deliveries carry."""
        raise NotImplementedError

    def enqueue(self, deliveries: int) -> None:
        for _ in range(deliveries // self.k):
            self.publish_event()

    def worker(self, log_path: Path, *, name: str, args: argparse.Namespace, events: bool) -> CeleryWorker:
        return CeleryWorker(self.app, self.queues, {}, log_path, name=name, pool=args.pool,
                            concurrency=args.concurrency, loglevel=args.loglevel, events=events)


class Plain(Side):
    """bench.plain.app: one ``send_webhook(url, secret_id, payload)`` task per URL per event."""

    name = "plain"
    app = "bench.plain.app"
    queues = "plain"
    db = 1

    def __init__(self, redis: PrivateRedis, receiver: Receiver, k: int, ca_path: str, tmp: Path) -> None:
        super().__init__(redis, receiver, k)
        self.secret_ids = [f"sub{i}" for i in range(k)]
        secrets_path = tmp / "plain-secrets.json"
        secrets_path.write_text(json.dumps({sid: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
                                            for sid in self.secret_ids}))
        os.environ.update({"BENCH_PLAIN_BROKER": redis.url(self.db), "BENCH_PLAIN_CA": ca_path,
                           "BENCH_PLAIN_SECRETS": str(secrets_path)})
        from webhooks import events

        from .plain.app import send_webhook

        self._events = events
        self._task = send_webhook
        self._data = events.sample(EVENT_TYPE)

    def body_size(self) -> int:
        envelope = self._events.build_envelope(EVENT_TYPE, self._data)
        return len(json.dumps(envelope, separators=(",", ":")).encode())

    def publish_event(self) -> list[str]:
        payload = self._events.build_envelope(EVENT_TYPE, self._data)
        for url, sid in zip(self.urls, self.secret_ids):
            self._task.apply_async((url, sid, payload))
        return [payload["id"]]


class Ours(Side):
    """chat-webhooks: ``webhooks.publish`` to K subscriptions, ``celery -A workers``."""

    name = "ours"
    app = "workers"
    queues = "deliveries,retries"
    db = 0

    def __init__(self, redis: PrivateRedis, receiver: Receiver, k: int) -> None:
        super().__init__(redis, receiver, k)
        import webhooks
        from webhooks import events
        from webhooks.enqueue import DELIVERIES_QUEUE, RETRIES_QUEUE

        self.queues = f"{DELIVERIES_QUEUE},{RETRIES_QUEUE}"  # what `make worker` consumes

        self._webhooks = webhooks
        self._events = events
        self._data = events.sample(EVENT_TYPE)
        self.account = "bench-ours"

    def body_size(self) -> int:
        return len(self._events.serialize(self._events.build_envelope(EVENT_TYPE, self._data)))

    def reset(self) -> None:
        super().reset()
        for url in self.urls:
            self._webhooks.subscriptions.create(self.account, url, [EVENT_TYPE])

    def publish_event(self) -> list[str]:
        published = self._webhooks.publish(self.account, EVENT_TYPE, self._data)
        if published.deliveries != self.k:
            raise RuntimeError(f"publish() enqueued {published.deliveries} deliveries, expected {self.k}")
        return list(published.delivery_ids)


# --------------------------------------------------------------------------- one measured run

@dataclass
class Run:
    """The figures of one capacity run."""

    side: str
    row: str
    rate: float
    deliveries: int  # in the CPU/Redis window
    worker_us: float
    redis_us: float
    receiver_us: float
    commands: float
    scripts: float
    round_trips: float
    duplicates: int
    seconds: float
    per_command: dict[str, tuple[float, float]] = field(default_factory=dict)  # per delivery: calls, µs


def _check_hits(side: Side, hits: list[Any], expected: int) -> int:
    """Every hit is this side's, a 200, signed v1; returns how many were duplicates."""
    bad = [h for h in hits if not h.path.startswith(f"/{side.name}/") or h.status != 200
           or not h.signature.startswith("v1,")]
    if bad:
        raise RuntimeError(f"{side.name}: {len(bad)} unexpected receiver hits, e.g. {bad[0]}")
    unique = len({(h.webhook_id, h.path) for h in hits})
    if unique < expected:
        raise RuntimeError(f"{side.name}: {unique} distinct deliveries received, expected {expected}")
    return len(hits) - unique


def _window(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    n = b.delivered - a.delivered
    return {
        "deliveries": n,
        "worker_us": (b.worker_cpu_s - a.worker_cpu_s) / n * 1e6,
        "redis_us": (b.redis.cpu_s - a.redis.cpu_s) / n * 1e6,
        "receiver_us": (b.receiver_cpu_s - a.receiver_cpu_s) / n * 1e6,
        "commands": (b.redis.commands - a.redis.commands) / n,
        "scripts": (b.redis.scripts - a.redis.scripts) / n,
        # b's own INFO is one read counted in b (the counter moves before the command runs).
        "round_trips": (b.redis.reads - a.redis.reads - 1) / n,
        "per_command": _per_command(a.redis.per_command, b.redis.per_command, n),
    }


def _per_command(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]], n: int) -> dict[str, tuple[float, float]]:
    """(calls, µs) per delivery of each command that ran in the window."""
    out = {}
    for name, (calls, usec) in b.items():
        calls0, usec0 = a.get(name, (0, 0))
        if calls > calls0:
            out[name] = ((calls - calls0) / n, (usec - usec0) / n)
    return out


def _start_workers(side: Side, args: argparse.Namespace, tmp: Path, tag: str, count: int,
                   events: bool) -> list[CeleryWorker]:
    workers = [side.worker(tmp / f"{tag}-w{i}.log", name=f"bench-{tag}-{i}", args=args, events=events)
               for i in range(count)]
    for w in workers:
        w.start()
    return workers


def _alive(workers: list[CeleryWorker]) -> Callable[[], None]:
    def check() -> None:
        for w in workers:
            w.check_alive()
    return check


def capacity_run(side: Side, row: str, args: argparse.Namespace, tmp: Path, tag: str) -> Run:
    """Enqueue WARMUP+N, start the worker(s), measure from the WARMUP-th to the last delivery."""
    warm, n = args.warmup, args.deliveries
    side.reset()
    side.enqueue(warm + n)
    log = AccessLog(side.receiver.log_path)
    r = side.redis.client()
    workers = _start_workers(side, args, tmp, tag, 2 if row == "two" else 1, events=row == "events")
    pids = [w.pid for w in workers]
    try:
        started = time.monotonic()
        log.wait_for(warm, 120 + warm / 5, _alive(workers))
        a = snapshot(len(log.hits), pids, side.receiver.pid, r)
        log.wait_for(warm + n, 120 + n / 5, _alive(workers))
        b = snapshot(len(log.hits), pids, side.receiver.pid, r)
        seconds = time.monotonic() - started
    finally:
        for w in workers:
            w.stop()
    log.poll()
    duplicates = _check_hits(side, log.hits, warm + n)
    times = sorted(h.at for h in log.hits)
    rate = n / (times[warm + n - 1] - times[warm - 1])
    log.close()
    return Run(side.name, row, rate, duplicates=duplicates, seconds=seconds, **_window(a, b))  # type: ignore[arg-type]


def latency_run(side: Side, rate: float, args: argparse.Namespace, tmp: Path, tag: str) -> list[float]:
    """One warmed-up worker; publish at ``rate`` deliveries/s for --latency-seconds; latencies in ms."""
    warm = args.warmup
    side.reset()
    side.enqueue(warm)
    log = AccessLog(side.receiver.log_path)
    workers = _start_workers(side, args, tmp, tag, 1, events=False)
    published: dict[str, float] = {}
    try:
        log.wait_for(warm, 120 + warm / 5, _alive(workers))
        interval = side.k / rate
        n_events = max(1, int(args.latency_seconds / interval))
        t0 = time.time() + 0.05
        for i in range(n_events):
            delay = t0 + i * interval - time.time()
            if delay > 0:
                time.sleep(delay)
            at = time.time()
            for wid in side.publish_event():
                published[wid] = at
        log.wait_for(warm + n_events * side.k, 60 + args.latency_seconds * 2, _alive(workers))
    finally:
        for w in workers:
            w.stop()
    log.poll()
    _check_hits(side, log.hits, warm + n_events * side.k)
    seen: set[tuple[str, str]] = set()
    latencies = []
    for h in log.hits:
        if h.webhook_id in published and (h.webhook_id, h.path) not in seen:
            seen.add((h.webhook_id, h.path))
            latencies.append((h.at - published[h.webhook_id]) * 1000)
    log.close()
    if len(latencies) != n_events * side.k:
        raise RuntimeError(f"{side.name}: matched {len(latencies)} of {n_events * side.k} deliveries to their publish")
    return latencies


# --------------------------------------------------------------------------- the table

def _machine(redis: PrivateRedis, receiver: Receiver) -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{len(os.sched_getaffinity(0))} × {model}, Linux {platform.release()}, Python {platform.python_version()}, "
            f"redis-server {redis.version()}, receiver {receiver.version()}; load average at the end: {load}")


def _ratio(ours: float, plain: float, digits: int = 2) -> str:
    return f"{ours / plain:.{digits}f}" if plain else "n/a"


def _target(ratio: float, limit: float, at_least: bool) -> str:
    ok = ratio >= limit if at_least else ratio <= limit
    return f"{'≥' if at_least else '≤'} {limit:g} {'✓' if ok else '✗'}"


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    latency_rate: dict[str, float] = field(default_factory=dict)

    def med(self, side: str, row: str, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs if r.side == side and r.row == row]
        return statistics.median(values) if values else float("nan")


def render(res: Results, rows: list[str], header: str, machine: str) -> str:
    out = [header, "", "| figure | plain task | ours | ours ÷ plain | target |", "|---|---|---|---|---|"]

    def line(title: str, p: str, o: str, ratio: str, target: str = "") -> None:
        out.append(f"| {title} | {p} | {o} | {ratio} | {target} |")

    for row in rows:
        p, o = res.med("plain", row, "rate"), res.med("ours", row, "rate")
        line(ROW_TITLES[row], f"{p:,.0f}", f"{o:,.0f}", _ratio(o, p), _target(o / p, 1.0, True))
    m = lambda side, attr: res.med(side, "one", attr)  # noqa: E731
    p, o = m("plain", "worker_us"), m("ours", "worker_us")
    line("worker CPU per delivery", f"{p:,.0f} µs", f"{o:,.0f} µs", _ratio(o, p), _target(o / p, 1.0, False))
    p, o = m("plain", "redis_us"), m("ours", "redis_us")
    line("Redis server CPU per delivery", f"{p:,.0f} µs", f"{o:,.0f} µs", _ratio(o, p), _target(o / p, 1.5, False))
    pr, orr, pc, oc = m("plain", "round_trips"), m("ours", "round_trips"), m("plain", "commands"), m("ours", "commands")
    line("Redis round trips / commands per delivery", f"{pr:.1f} / {pc:.1f}", f"{orr:.1f} / {oc:.1f}",
         f"{_ratio(orr, pr, 1)} / {_ratio(oc, pc, 1)}")
    p, o = m("plain", "scripts"), m("ours", "scripts")
    line("… of which top-level EVAL/EVALSHA", f"{p:.2f}", f"{o:.2f}", "")
    # Celery's own traffic per task (BRPOP, the unacked bookkeeping, the ack) is what the plain
    # task's round trips are; what ours makes beyond that is ours (one attempt per delivery here).
    # judged as printed: the reads proxy over-counts by a few hundredths (idle BRPOP timeouts)
    line("… our own round trips per attempt (ours − plain)", "", f"{orr - pr:.1f}", "", _target(round(orr - pr, 1), 2, False))
    if res.latency.get("plain") and res.latency.get("ours"):
        lp, lo = res.latency["plain"], res.latency["ours"]
        p50p, p99p, p50o, p99o = percentile(lp, 50), percentile(lp, 99), percentile(lo, 50), percentile(lo, 99)
        rp, ro = res.latency_rate["plain"], res.latency_rate["ours"]
        line(f"end-to-end p50 / p99 at half capacity (plain {rp:,.0f}/s, ours {ro:,.0f}/s)",
             f"{p50p:.1f} / {p99p:.1f} ms", f"{p50o:.1f} / {p99o:.1f} ms",
             f"{_ratio(p50o, p50p, 1)} / {_ratio(p99o, p99p, 1)}", _target(p99o / p99p, 1.0, False) + " (p99)")
    p, o = m("plain", "receiver_us"), m("ours", "receiver_us")
    line("receiver CPU per delivery (not the bottleneck)", f"{p:,.0f} µs", f"{o:,.0f} µs", _ratio(o, p))
    out += ["", f"Machine: {machine}."]
    if m("ours", "redis_us") > 1.5 * m("plain", "redis_us"):
        out += ["", *redis_profile(res)]
    return "\n".join(out)


# Commands a client sends itself; every other command in INFO commandstats ran inside one of
# these (a MULTI/EXEC transaction or a script), whose µs already include it.
_TOP_LEVEL = frozenset({"brpop", "blpop", "multi", "exec", "evalsha", "eval", "evalsha_ro", "eval_ro", "fcall",
                        "fcall_ro", "ping", "publish"})
_SCRIPTS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"})


def redis_profile(res: Results) -> list[str]:
    """Where each side's Redis CPU per delivery goes (one-worker runs, medians per command of
    INFO commandstats): inside the commands clients send, inside the commands our scripts run,
    and around them (sockets, request parsing, the event loop). Printed when the Redis CPU row
    misses its target, with the next step."""
    lines = ["Redis CPU over its target: where each side spends it per delivery (one-worker runs, medians;"
             " µs inside Redis's call() from INFO commandstats):"]
    for side in ("plain", "ours"):
        runs = [r for r in res.runs if r.side == side and r.row == "one" and r.per_command]
        if not runs:
            continue
        names = {n for r in runs for n in r.per_command}
        usec = {n: statistics.median([r.per_command.get(n, (0.0, 0.0))[1] for r in runs]) for n in names}
        calls = {n: statistics.median([r.per_command.get(n, (0.0, 0.0))[0] for r in runs]) for n in names}
        total = res.med(side, "one", "redis_us")
        top = {n: u for n, u in usec.items() if n in _TOP_LEVEL and u > 0}
        inside = sum(top.values())
        scripts = sum(u for n, u in top.items() if n in _SCRIPTS)
        inner = sum(u for n, u in usec.items() if n not in _TOP_LEVEL)
        inner_calls = sum(c for n, c in calls.items() if n not in _TOP_LEVEL)
        parts = ", ".join(f"{n} {u:.0f}" for n, u in sorted(top.items(), key=lambda kv: -kv[1]))
        line = f"  {side:5}: {total:,.0f} µs = {inside:,.0f} inside the calls clients send ({parts})"
        if scripts:
            line += (f"; of the scripts' {scripts:,.0f}, {inner:,.0f} in the {inner_calls:.0f} commands they run and "
                     f"{scripts - inner:,.0f} in the Lua machinery around them (arguments, replies, AOF records)")
        lines.append(line + f"; {total - inside:,.0f} around the calls (sockets, parsing, event loop)")
    lines.append("  next step: fewer writes per attempt (docs/performance.md, 'What stands in the way'); "
                 "python -m bench.redis_instructions splits a script's work by function, exactly.")
    return lines


# --------------------------------------------------------------------------- main

def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.sidebyside", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deliveries", type=int, default=6000, help="measured deliveries per run (default 6000)")
    ap.add_argument("--warmup", type=int, default=500, help="deliveries before the measured window (default 500)")
    ap.add_argument("--subscriptions", type=int, default=10, help="URLs (subscriptions) each event goes to (default 10)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each row and side; medians are printed (default 3)")
    ap.add_argument("--rows", default=",".join(ROWS), help="which rate rows: one,events,two (default all)")
    ap.add_argument("--pool", default="threads")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--loglevel", default="INFO", help="worker -l for both sides (default INFO, the production level)")
    ap.add_argument("--latency-seconds", type=float, default=10.0, help="steady publishing per side (0: skip)")
    ap.add_argument("--latency-rate", type=float, default=0.0,
                    help="deliveries/s for the latency row (default: half each side's own one-worker rate)")
    ap.add_argument("--receiver", choices=("auto", "nginx", "asyncio"), default="auto")
    ap.add_argument("--endpoint-delay-ms", type=float, default=0.0,
                    help="every endpoint answers after this long (a slow endpoint; uses the asyncio receiver)")
    ap.add_argument("--encrypt", action="store_true", help="run ours with WEBHOOKS_ENCRYPTION_KEY set")
    ap.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE")
    ap.add_argument("--commandstats", action="store_true",
                    help="print each side's Redis commands per delivery (calls and µs, INFO commandstats)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (worker and receiver logs)")
    ap.add_argument("--quick", action="store_true",
                    help="development: 1,000 deliveries, warm-up 100, 1 run, one-worker row only, 5 s latency")
    args = ap.parse_args(argv)
    if args.quick:
        args.deliveries, args.warmup, args.runs, args.rows, args.latency_seconds = 1000, 100, 1, "one", 5.0
    k = args.subscriptions
    args.deliveries = -(-args.deliveries // k) * k  # whole events: multiples of K
    args.warmup = max(k, -(-args.warmup // k) * k)
    args.row_list = [r.strip() for r in args.rows.split(",") if r.strip()]
    if "one" not in args.row_list:
        args.row_list.insert(0, "one")  # the CPU, Redis and latency rows come from it
    unknown = set(args.row_list) - set(ROWS)
    if unknown:
        ap.error(f"--rows: unknown {', '.join(sorted(unknown))} (choose from {', '.join(ROWS)})")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse([] if argv is None else argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sbs-"))
    from tests.support.tls import make_ca

    ca = make_ca(tmp)
    redis = PrivateRedis(tmp / "redis").start()
    receiver = None
    try:
        receiver = start_receiver(ca, tmp / "receiver", args.receiver, args.endpoint_delay_ms)
        env = {
            "WEBHOOKS_REDIS_URL": redis.url(Ours.db),
            "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
            "WEBHOOKS_CA_BUNDLE": ca.ca_pem_path,
            # The per-endpoint cap stays on, above what two workers can have in flight to one URL.
            "WEBHOOKS_ENDPOINT_CONCURRENCY": str(2 * args.concurrency),
        }
        if args.encrypt:
            from cryptography.fernet import Fernet

            env["WEBHOOKS_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
        else:
            env["WEBHOOKS_ALLOW_PLAINTEXT_SECRETS"] = "1"  # storing a secret needs a key or this flag
        os.environ.update(env)
        from webhooks.settings import reload_settings

        reload_settings()
        plain = Plain(redis, receiver, args.subscriptions, ca.ca_pem_path, tmp)
        ours = Ours(redis, receiver, args.subscriptions)
        sizes = {plain.body_size(), ours.body_size()}
        header = (f"Side by side: {args.deliveries:,} pre-enqueued deliveries per run after a warm-up of "
                  f"{args.warmup:,}, {args.subscriptions} URLs, a {max(sizes)}-byte `{EVENT_TYPE}` body, "
                  f"`-P {args.pool} -c {args.concurrency} -l {args.loglevel}` for both, one private redis-server "
                  f"(AOF everysec), {receiver.kind} HTTPS receiver on loopback (keep-alive"
                  f"{f', answering after {args.endpoint_delay_ms:g} ms' if args.endpoint_delay_ms else ''}); medians of "
                  f"{args.runs} run{'s' if args.runs != 1 else ''}.")
        print(header, flush=True)
        res = Results()
        sides: list[Side] = [plain, ours]
        for run in range(args.runs):
            for row in args.row_list:
                # plain first in even runs, ours first in odd ones: a trend in the machine's load
                # (a neighbour starting work) does not always fall on the same side.
                for side in (sides if run % 2 == 0 else sides[::-1]):
                    tag = f"{side.name}-{row}-{run}"
                    r = capacity_run(side, row, args, tmp, tag)
                    res.runs.append(r)
                    print(f"  run {run + 1}/{args.runs} {row:6} {side.name:5}: {r.rate:7.0f} deliveries/s, "
                          f"worker {r.worker_us:6.0f} µs, Redis {r.redis_us:5.0f} µs, {r.round_trips:5.1f} round trips, "
                          f"{r.commands:5.1f} commands, receiver {r.receiver_us:4.0f} µs per delivery"
                          f"{f', {r.duplicates} duplicates' if r.duplicates else ''} ({r.seconds:.0f} s)", flush=True)
                    if args.commandstats and row == "one":
                        print(f"    Redis commands per delivery (µs inside Redis's call(); a script's include its inner "
                              f"commands'; the rest of the {r.redis_us:.0f} µs is sockets, parsing and the event loop):")
                        for name, (calls, usec) in sorted(r.per_command.items(), key=lambda kv: -kv[1][1]):
                            print(f"      {name:18} {calls:5.2f} calls {usec:6.1f} µs", flush=True)
        if args.latency_seconds > 0:
            for side in sides:
                rate = args.latency_rate or res.med(side.name, "one", "rate") / 2
                lat = latency_run(side, rate, args, tmp, f"{side.name}-latency")
                res.latency[side.name], res.latency_rate[side.name] = lat, rate
                print(f"  latency {side.name:5} at {rate:.0f} deliveries/s: p50 {percentile(lat, 50):.1f} ms, "
                      f"p99 {percentile(lat, 99):.1f} ms over {len(lat)}", flush=True)
        print(flush=True)
        print(render(res, args.row_list, header, _machine(redis, receiver)), flush=True)
        result = {"runs": [r.__dict__ for r in res.runs], "latency_rate": res.latency_rate,
                  "latency_ms": {s: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for s, v in res.latency.items()}}
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        return result
    finally:
        if receiver is not None:
            receiver.stop()
        redis.stop()
        if args.keep:
            print(f"logs kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
