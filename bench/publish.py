"""publish() latency for an event with 10 subscribers, against Celery's own apply_async.

    python -m bench.publish [--events 2000] [--subscribers 10]

Measures, in this process against a real Redis: the median and p99 of
``webhooks.publish()`` (validate, store once, one atomic Lua fan-out) for a
``conversation.ended`` event (sample transcript), and, as the yardstick, the same fan-out
done the usual way: one ``apply_async`` per subscription. Queues are drained afterwards
(no worker runs; nothing is delivered). When a target is missed (median <= 0.8 ms, p99 <= 2 ms,
>= 8x) it prints where the median goes: validation, the script's time in Redis (INFO
commandstats), a bare round trip (PING) and the rest.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from .common import bench_redis_url, fresh_account, percentile, summary


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--subscribers", type=int, default=10)
    args = ap.parse_args(argv)

    url = bench_redis_url()
    from webhooks.secretbox import new_key

    os.environ.update({"WEBHOOKS_REDIS_URL": url, "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
                       "WEBHOOKS_ENCRYPTION_KEY": os.environ.get("WEBHOOKS_ENCRYPTION_KEY") or new_key()})
    from webhooks.settings import reload_settings

    reload_settings()
    import redis

    import webhooks
    from webhooks import events
    from webhooks.connection import get_redis
    from webhooks.enqueue import DELIVERIES_QUEUE

    # A private queue name would need a private worker; no worker runs, so we drain ours.
    r = get_redis()
    if r.llen(DELIVERIES_QUEUE):
        raise SystemExit(f"the {DELIVERIES_QUEUE} queue at {url} is not empty: is a worker or another bench using it?")
    account = fresh_account("bench-publish")
    for i in range(args.subscribers):
        webhooks.subscriptions.create(account, f"https://127.0.0.1:9/hook{i}", ["conversation.ended"])
    data = events.sample("conversation.ended")
    body_size = len(events.serialize(events.build_envelope("conversation.ended", data)))

    for _ in range(50):  # warm up: connection, script load, imports
        webhooks.publish(account, "conversation.ended", data)
    scripts_before = r.info("commandstats").get("cmdstat_evalsha", {})
    times: list[float] = []
    for _ in range(args.events):
        t0 = time.perf_counter()
        published = webhooks.publish(account, "conversation.ended", data)
        times.append((time.perf_counter() - t0) * 1000)
        assert published.deliveries == args.subscribers
    scripts_after = r.info("commandstats").get("cmdstat_evalsha", {})
    r.delete(DELIVERIES_QUEUE)
    # the parts of one publish, measured apart: validation, a bare round trip, the script in Redis
    validation, round_trip = [], []
    for _ in range(min(args.events, 500)):
        t0 = time.perf_counter()
        events.check_size(events.serialize(events.build_envelope("conversation.ended", data)), 1 << 30)
        t1 = time.perf_counter()
        r.ping()
        t2 = time.perf_counter()
        validation.append((t1 - t0) * 1000)
        round_trip.append((t2 - t1) * 1000)
    calls = scripts_after.get("calls", 0) - scripts_before.get("calls", 0)
    script_ms = (scripts_after.get("usec", 0) - scripts_before.get("usec", 0)) / calls / 1000 if calls else float("nan")

    from celery import Celery

    app = Celery("bench", broker=url)
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    base: list[float] = []
    with app.producer_or_acquire() as producer:
        for i in range(min(args.events, 1000) + 50):
            t0 = time.perf_counter()
            for s in range(args.subscribers):
                app.send_task("webhooks.deliver", args=[f"msg_bench{i}_{s}"], queue="bench-apply-async", producer=producer)
            if i >= 50:
                base.append((time.perf_counter() - t0) * 1000)
    redis.Redis.from_url(url).delete("bench-apply-async")

    ours, theirs = statistics.median(times), statistics.median(base)
    print(f"publish() of a {body_size}-byte conversation.ended to {args.subscribers} subscribers: {summary(times)}")
    print(f"the same fan-out as {args.subscribers} x apply_async: {summary(base)}")
    print(f"publish() is {theirs / ours:.1f}x faster than one apply_async per subscription (medians)")
    p99 = percentile(times, 99)
    if ours > 0.8 or p99 > 2.0 or theirs / ours < 8:
        v, rt = statistics.median(validation), statistics.median(round_trip)
        print(f"over its targets (median <= 0.8 ms, p99 <= 2 ms, >= 8x): the median {ours:.2f} ms is about "
              f"validation {v:.2f} ms (marshmallow, serialize, size check) + the script in Redis {script_ms:.2f} ms "
              f"(INFO commandstats, per call) + a round trip {rt:.2f} ms (PING) + the rest "
              f"{ours - v - script_ms - rt:.2f} ms (matching, ids, the client); next steps in docs/performance.md "
              f"(less Redis work per delivery: python -m bench.redis_instructions --mode publish counts it)")
    return {"median_ms": ours, "p99_ms": p99, "apply_async_median_ms": theirs}


if __name__ == "__main__":
    main()
