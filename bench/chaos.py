"""The chaos soak (``make chaos``): a minute of steady publishing with faults at random.

Its own redis-server (shipped config, AOF), two threads workers, an HTTPS endpoint on
loopback, this process as the producer (outbox on) publishing ``--rate`` events a second to
two subscriptions. Every ``--every`` seconds (randomised) one fault is injected: a worker
SIGKILLed or SIGTERMed (and replaced), a rolling restart of every worker (SIGTERM, replace,
next), Redis SIGKILLed and restarted, the endpoint down for 30 s, answering 500, or hanging.
With ``--sentinel`` Redis is a primary, a replica and three sentinels, and the Redis fault is
a Sentinel failover instead (writes paused on the primary first, as docs/reliability.md says). The recovery settings are the defaults (visibility timeout,
heartbeat, sweep, reconciler). For the worker and Redis faults it prints the time to recover:
until no message held at the fault is still unacked under its old score (a SIGKILLed worker's
are handed out again, live workers' re-scored by their heartbeat) and deliveries flow again.
Then it waits for the ledger to settle and prints::

    published | delivered unique | duplicates | dead letters | lost

``lost`` (must be 0) counts deliveries neither delivered nor dead-lettered, plus deliveries
an acknowledged publish owed and never enqueued.
"""
from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from tests.faults.support import Stack, kill_worker, paced
from tests.support.receiver import Reply
from tests.support.sentinel_cluster import SentinelCluster
from tests.support.tls import make_ca
from webhooks.settings import SETTINGS_DOC

ACCOUNT = "chaos"
# Retries outlast the 30 s outage: 1+2+4+8+16+30 = 61 s before jitter.
SCHEDULE = "1,2,4,8,16,30"
# The recovery mechanism at its defaults: a killed worker's deliveries come back within 45 s.
ENV = {name: SETTINGS_DOC[name][0] for name in ("WEBHOOKS_VISIBILITY_TIMEOUT_S", "WEBHOOKS_RECONCILE_AFTER_S")}


def _say(t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)


def _time_to_recover(stack: Stack, fault_wall: float, start: float, delivered_before: int,
                     limit_s: float = 120.0) -> float | None:
    """Seconds from the fault (``start``, monotonic) until no message is unacked under a score
    older than the fault and deliveries flow again; None past ``limit_s``."""
    while time.monotonic() - start < limit_s:
        try:
            stale = stack.redis.client().zcount("unacked_index", "-inf", fault_wall)
        except Exception:  # noqa: BLE001 - Redis may be mid-failover: look again
            stale = -1
        if stale == 0 and stack.endpoint.delivered() > delivered_before:
            return time.monotonic() - start
        time.sleep(0.25)
    return None


def run(seconds: float, rate: float, every: float, seed: int | None, workers: int, concurrency: int,
        use_sentinel: bool = False, only: list[str] | None = None) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp_s:
        tmp = Path(tmp_s)
        ca = make_ca(tmp / "ca")
        env = {**ENV, "WEBHOOKS_OUTBOX": str(tmp / "outbox.sqlite")}
        cluster = SentinelCluster(tmp / "sentinel") if use_sentinel else None
        with Stack(tmp / "stack", ca, env, name="chaos", redis_server=cluster) as stack:
            t0 = time.monotonic()
            stack.subscribe(ACCOUNT, retry_schedule=SCHEDULE)
            live = [stack.start_worker(concurrency=concurrency, beat=(i == 0)) for i in range(workers)]
            _say(t0, f"stack up: redis {stack.env['WEBHOOKS_REDIS_URL']}, {workers} workers x {concurrency} threads")
            stop = threading.Event()
            lock = threading.Lock()
            faults: list[str] = []
            recoveries: list[str] = []

            def measured(label: str, act: Callable[[], None]) -> Callable[[], None]:
                def run_and_time() -> None:
                    at, started, before = time.time(), time.monotonic(), stack.endpoint.delivered()
                    act()

                    def time_it() -> None:
                        took = _time_to_recover(stack, at, started, before)
                        line = f"{label}: recovered in {took:.1f}s" if took is not None else f"{label}: not recovered in 120 s"
                        recoveries.append(line)
                        _say(t0, line)

                    threading.Thread(target=time_it, daemon=True).start()
                return run_and_time

            def replace(sig: int, label: str) -> None:
                with lock:
                    victim = rng.choice(live)
                    live.remove(victim)
                had_beat = any(a == "-B" for a in victim.args)
                kill_worker(victim, sig)
                live.append(stack.start_worker(concurrency=concurrency, beat=had_beat))
                faults.append(label)

            def rolling_restart() -> None:
                for _ in range(len(live)):
                    with lock:
                        victim = live.pop(0)
                    had_beat = any(a == "-B" for a in victim.args)
                    kill_worker(victim, signal.SIGTERM)
                    live.append(stack.start_worker(concurrency=concurrency, beat=had_beat))
                faults.append(f"rolling restart of {len(live)} workers")

            def sentinel_failover() -> None:
                # The planned-switch recipe (docs/reliability.md): a bare SENTINEL FAILOVER lets
                # the old primary take writes for ~10 s that its resync then discards.
                assert cluster is not None
                cluster.failover(pause_writes_ms=15000)
                faults.append("Sentinel failover (writes paused first)")

            def redis_kill() -> None:
                stack.redis.kill()
                stop.wait(2.0)  # the outage itself
                stack.redis.restart()
                faults.append("redis SIGKILL + restart after 2 s")

            def endpoint(mode: Reply | None, hold_s: float, label: str) -> Callable[[], None]:
                def act() -> None:
                    if mode is None:
                        stack.endpoint.down()
                    else:
                        stack.endpoint.set_mode(mode)
                    stop.wait(hold_s)
                    stack.endpoint.set_mode(Reply(status=200))
                    stack.endpoint.up()
                    faults.append(label)
                return act

            menu: list[tuple[str, Callable[[], None]]] = [
                ("worker SIGKILL", measured("worker SIGKILL", lambda: replace(signal.SIGKILL, "worker SIGKILL (replaced)"))),
                ("worker SIGTERM", lambda: replace(signal.SIGTERM, "worker SIGTERM (replaced)")),
                ("rolling restart", measured("rolling restart", rolling_restart)),
                ("Sentinel failover", measured("Sentinel failover", sentinel_failover)) if use_sentinel
                else ("redis SIGKILL", redis_kill),
                ("endpoint 500 for 5 s", endpoint(Reply(status=500), 5.0, "endpoint 500 for 5 s")),
                ("endpoint hangs for 5 s", endpoint(Reply.hang(max_s=6.0), 5.0, "endpoint hangs for 5 s")),
            ]
            down_30 = endpoint(None, 30.0, "endpoint down 30 s")

            by_name = dict(menu)
            unknown = [n for n in only or [] if n not in by_name]
            if unknown:
                raise SystemExit(f"unknown fault(s) {unknown}: choose from {sorted(by_name)}")

            finished, injected = threading.Event(), threading.Event()

            def chaos() -> None:
                try:
                    inject()
                finally:
                    injected.set()
                    # Workers started here die with this thread (PR_SET_PDEATHSIG follows the
                    # thread that forked them): keep it alive until the soak is over.
                    finished.wait()

            def inject() -> None:
                first, i = True, 0
                while not stop.wait(every * rng.uniform(0.6, 1.4)):
                    if only:
                        name = only[i % len(only)]
                        name, act, i = name, by_name[name], i + 1
                    else:
                        name, act = ("endpoint down 30 s", down_30) if first else rng.choice(menu)
                    first = False
                    _say(t0, f"fault: {name}")
                    try:
                        act()
                    except Exception as exc:  # noqa: BLE001 - a failed injection is reported, not fatal
                        _say(t0, f"fault {name} could not be injected: {exc!r}")

            monkey = threading.Thread(target=chaos, daemon=True)
            monkey.start()
            started = time.monotonic()
            n = int(seconds * rate)
            for i in paced(n, rate):
                stack.log.publish(ACCOUNT, f"evt_c{i}")
            took = time.monotonic() - started
            stop.set()
            injected.wait(60)
            stack.endpoint.set_mode(Reply(status=200))
            stack.endpoint.up()
            _say(t0, f"published {n} events in {took:.1f}s ({n / took:.0f}/s); waiting for the ledger to settle")
            try:
                stack.wait_settled(ACCOUNT, 2 * len(stack.log.acknowledged), timeout_s=300)
            except AssertionError as exc:
                _say(t0, f"did not settle: {exc}")
            t = stack.tally(ACCOUNT)
            _say(t0, "done")
            print()
            print(f"chaos soak: {seconds:g} s at {rate:g} events/s to 2 subscriptions, "
                  f"{workers} threads workers (-c {concurrency}), faults every ~{every:g} s")
            print("faults: " + "; ".join(faults))
            if recoveries:
                print("time to recover: " + "; ".join(recoveries))
            print()
            print("| published | delivered unique | duplicates | dead letters | lost |")
            print("|---:|---:|---:|---:|---:|")
            print(f"| {t.published:,} | {t.delivered_unique:,} | {t.duplicates:,} | {t.dead:,} | {t.lost:,} |")
            print()
            print(f"publishes refused with PublishError: {len(stack.log.failed)}; spooled in the outbox: "
                  f"{len(stack.log.spooled)}; ledger: {t.ledger}")
            reconciled = _reconciled(stack)
            print(f"re-sent by the reconciler (task messages lost in kombu's BRPOP window): {reconciled}")
            finished.set()
            return 0 if t.lost == 0 and t.unexpected == 0 else 1


def _reconciled(stack: Stack) -> int:
    from webhooks.keys import K

    r = stack.redis.client()
    pipe = r.pipeline(transaction=False)
    ids = list(stack.enqueued(ACCOUNT))
    for did in ids:
        pipe.hget(K.delivery(did), "reconciled")
    return sum(int(v or 0) for v in pipe.execute())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="how long to publish (default 60)")
    p.add_argument("--rate", type=float, default=300.0, help="events per second, each to 2 subscriptions (default 300)")
    p.add_argument("--every", type=float, default=10.0, help="mean seconds between faults (default 10)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--concurrency", type=int, default=16, help="threads per worker (default 16)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--sentinel", action="store_true",
                   help="Redis as a primary, a replica and three sentinels; the Redis fault is a failover")
    p.add_argument("--faults", default="", metavar="NAME,NAME",
                   help="inject these faults in turn instead of at random (e.g. 'worker SIGKILL,rolling restart')")
    a = p.parse_args(argv)
    only = [f.strip() for f in a.faults.split(",") if f.strip()] or None
    return run(a.seconds, a.rate, a.every, a.seed, a.workers, a.concurrency, a.sentinel, only)


if __name__ == "__main__":
    sys.exit(main())
