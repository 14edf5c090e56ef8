"""The chaos soak (``make chaos``): a minute of steady publishing with faults at random.

Its own redis-server (shipped config, AOF), two threads workers, an HTTPS endpoint on
loopback, this process as the producer (outbox on) publishing ``--rate`` events a second to
two subscriptions. Every ``--every`` seconds (randomised) one fault is injected: a worker
SIGKILLed or SIGTERMed (and replaced), Redis SIGKILLed and restarted, the endpoint down for
30 s, answering 500, or hanging. Then it waits for the ledger to settle and prints::

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
from tests.support.tls import make_ca

ACCOUNT = "chaos"
# Retries outlast the 30 s outage: 1+2+4+8+16+30 = 61 s before jitter.
SCHEDULE = "1,2,4,8,16,30"
ENV = {
    "WEBHOOKS_VISIBILITY_TIMEOUT_S": "20",  # a killed worker's deliveries come back after 20 s
}


def _say(t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)


def run(seconds: float, rate: float, every: float, seed: int | None, workers: int, concurrency: int) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp_s:
        tmp = Path(tmp_s)
        ca = make_ca(tmp / "ca")
        env = {**ENV, "WEBHOOKS_OUTBOX": str(tmp / "outbox.sqlite")}
        with Stack(tmp / "stack", ca, env, name="chaos") as stack:
            t0 = time.monotonic()
            stack.subscribe(ACCOUNT, retry_schedule=SCHEDULE)
            live = [stack.start_worker(concurrency=concurrency, beat=(i == 0)) for i in range(workers)]
            _say(t0, f"stack up: redis :{stack.redis.port}, {workers} workers x {concurrency} threads")
            stop = threading.Event()
            lock = threading.Lock()
            faults: list[str] = []

            def replace(sig: int, label: str) -> None:
                with lock:
                    victim = rng.choice(live)
                    live.remove(victim)
                had_beat = any(a == "-B" for a in victim.args)
                kill_worker(victim, sig)
                live.append(stack.start_worker(concurrency=concurrency, beat=had_beat))
                faults.append(label)

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
                ("worker SIGKILL", lambda: replace(signal.SIGKILL, "worker SIGKILL (replaced)")),
                ("worker SIGTERM", lambda: replace(signal.SIGTERM, "worker SIGTERM (replaced)")),
                ("redis SIGKILL", redis_kill),
                ("endpoint 500 for 5 s", endpoint(Reply(status=500), 5.0, "endpoint 500 for 5 s")),
                ("endpoint hangs for 5 s", endpoint(Reply.hang(max_s=6.0), 5.0, "endpoint hangs for 5 s")),
            ]
            down_30 = endpoint(None, 30.0, "endpoint down 30 s")

            def chaos() -> None:
                first = True
                while not stop.wait(every * rng.uniform(0.6, 1.4)):
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
            monkey.join(60)
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
            print()
            print("| published | delivered unique | duplicates | dead letters | lost |")
            print("|---:|---:|---:|---:|---:|")
            print(f"| {t.published:,} | {t.delivered_unique:,} | {t.duplicates:,} | {t.dead:,} | {t.lost:,} |")
            print()
            print(f"publishes refused with PublishError: {len(stack.log.failed)}; spooled in the outbox: "
                  f"{len(stack.log.spooled)}; ledger: {t.ledger}")
            reconciled = _reconciled(stack)
            print(f"re-sent by the reconciler (task messages lost in kombu's BRPOP window): {reconciled}")
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
    a = p.parse_args(argv)
    return run(a.seconds, a.rate, a.every, a.seed, a.workers, a.concurrency)


if __name__ == "__main__":
    sys.exit(main())
