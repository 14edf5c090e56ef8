"""Deliveries per second of ONE worker against a local HTTPS receiver.

    python -m bench.throughput [--events 300] [--subscribers 10] [--concurrency 32] [--runs 3] [--workers 1]
                               [--slow-ms 100]

A real worker process (``-P threads -c N``, the production shape), a real HTTPS receiver
on loopback (TLS with a throwaway CA, keep-alive), a real Redis. Publishes EVENTS events
to SUBSCRIBERS subscriptions each, and times from the first publish to the last delivery
the receiver got; prints the median over the runs. On one 2-core machine the receiver,
the worker and Redis share the CPU, so the figure is a floor for a worker on its own box.

With ``--slow-ms MS`` (default 100; 0 skips it) the same runs are repeated, alternating, with
every endpoint answering after MS milliseconds, and the ratio slow ÷ instant is printed (the
target: >= 0.9, the worker's threads keep the rate while deliveries wait on the network).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from .common import bench_redis_url, fresh_account


def run_once(env: dict[str, str], receiver, events_n: int, subscribers: int) -> float:  # type: ignore[no-untyped-def]
    import webhooks
    from webhooks import events

    account = fresh_account("bench-tp")
    for i in range(subscribers):
        webhooks.subscriptions.create(account, receiver.url(f"/{account}/{i}"), ["message.sent"])
    data = events.sample("message.sent")
    expected = events_n * subscribers
    before = len(receiver.requests)
    t0 = time.perf_counter()
    for _ in range(events_n):
        webhooks.publish(account, "message.sent", data)
    receiver.wait_for(lambda r: len(r.requests) - before >= expected, timeout_s=300)
    elapsed = time.perf_counter() - t0
    return expected / elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--subscribers", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--pool", default="threads")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1, help="worker processes (one per core is the advice)")
    ap.add_argument("--slow-ms", type=float, default=100.0,
                    help="also measure with endpoints answering after this many ms, alternating (0: skip)")
    args = ap.parse_args([] if argv is None else argv)

    from tests.support.receiver import Receiver, Reply
    from tests.support.tls import make_ca
    from tests.support.worker import Worker

    tmp = Path(tempfile.mkdtemp(prefix="bench-tp-"))
    ca = make_ca(tmp)
    env = {
        "WEBHOOKS_REDIS_URL": bench_redis_url(),
        "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
        "WEBHOOKS_CA_BUNDLE": ca.ca_pem_path,
        "WEBHOOKS_ENDPOINT_CONCURRENCY": str(args.concurrency),
    }
    os.environ.update(env)
    from webhooks.settings import reload_settings

    reload_settings()
    rates: list[float] = []
    slow_rates: list[float] = []
    workers = [Worker(env, tmp / f"worker{i}.log", concurrency=args.concurrency, pool=args.pool, beat=False)
               for i in range(args.workers)]
    with Receiver(ca) as receiver:
        try:
            for w in workers:
                w.start()
            run_once(env, receiver, 20, args.subscribers)  # warm up: connections, imports
            for _ in range(args.runs):
                receiver.set_default(Reply())
                rates.append(run_once(env, receiver, args.events, args.subscribers))
                if args.slow_ms > 0:
                    receiver.set_default(Reply(delay_s=args.slow_ms / 1000))
                    slow_rates.append(run_once(env, receiver, args.events, args.subscribers))
        finally:
            for w in workers:
                w.stop()
    med = statistics.median(rates)
    who = "one worker" if args.workers == 1 else f"{args.workers} workers"
    print(f"{who} (-P {args.pool} -c {args.concurrency}) delivering to a local HTTPS receiver: "
          f"median {med:.0f} deliveries/s over {args.runs} runs of {args.events * args.subscribers} "
          f"(runs: {', '.join(f'{r:.0f}' for r in rates)})")
    result = {"deliveries_per_s": med}
    if slow_rates:
        slow = statistics.median(slow_rates)
        print(f"the same with every endpoint answering after {args.slow_ms:g} ms: median {slow:.0f} deliveries/s "
              f"(runs: {', '.join(f'{r:.0f}' for r in slow_rates)}); slow / instant: {slow / med:.2f} (goal >= 0.9)")
        result.update({"slow_deliveries_per_s": slow, "slow_ratio": slow / med})
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
