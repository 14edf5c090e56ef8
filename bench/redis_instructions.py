"""Instructions Redis spends on our scripts, counted by callgrind: exact where timers are not.

    python -m bench.redis_instructions [--mode attempt|publish] [-n 300] [--subscriptions 10]
        [--redis-server PATH] [--top 40]

Runs ``redis-server`` (the repository's config/redis.conf, AOF everysec) under
``valgrind --tool=callgrind --instr-atstart=no``, publishes events to ``--subscriptions``
subscriptions, and turns instrumentation on (``callgrind_control -i on``) only while this
process makes ``-n`` attempts (``claim`` + ``settle``, against a FakeTransport answering 200)
or ``-n`` publishes. Prints the instructions per attempt (or publish) in all, and the
inclusive count of the functions that cost the most (``callgrind_annotate --inclusive=yes``).

The counts do not depend on the machine's load, so two versions of a script compare exactly;
absolute time is another matter (an instruction count says nothing of cache misses, which a
busy machine has more of). Function names need a redis-server with symbols: Debian's is
stripped, so build one (``make`` in a checkout of redis 7.0.x; ``--redis-server`` points at
``src/redis-server``). Needs valgrind.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("attempt", "publish"), default="attempt")
    ap.add_argument("-n", type=int, default=300, help="attempts or publishes counted")
    ap.add_argument("--subscriptions", type=int, default=10)
    ap.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    ap.add_argument("--top", type=int, default=40, help="functions listed")
    args = ap.parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install valgrind)")

    tmp = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
    port = _free_port()
    out = tmp / "callgrind.out"
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", args.redis_server,
         str(ROOT / "config" / "redis.conf"), "--port", str(port), "--dir", str(tmp), "--daemonize", "no",
         "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import redis

        deadline = time.monotonic() + 60
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("redis-server under valgrind did not start")
                time.sleep(0.1)
        from webhooks.secretbox import new_key

        os.environ.update({"WEBHOOKS_REDIS_URL": f"redis://127.0.0.1:{port}/0", "WEBHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
                           "WEBHOOKS_ENCRYPTION_KEY": new_key()})
        from webhooks.settings import reload_settings

        reload_settings()
        import webhooks
        from webhooks import delivery, events
        from webhooks.state import get_store
        from webhooks.transport import FakeTransport

        for i in range(args.subscriptions):
            webhooks.subscriptions.create("acct", f"https://127.0.0.1:9/hook{i}", ["message.sent"])
        data = events.sample("message.sent")
        warm = 50
        ids: list[str] = []
        if args.mode == "attempt":
            while len(ids) < warm + args.n:
                ids += webhooks.publish("acct", "message.sent", data).delivery_ids
            redis.Redis(port=port).delete("deliveries")
        store, transport = get_store(), FakeTransport()
        for did in ids[:warm]:
            delivery.attempt(did, store=store, transport=transport)
        if args.mode == "publish":
            for _ in range(warm):
                webhooks.publish("acct", "message.sent", data)
        _callgrind(server.pid, "-i", "on")
        if args.mode == "attempt":
            for did in ids[warm:warm + args.n]:
                outcome = delivery.attempt(did, store=store, transport=transport)
                assert outcome.action == "delivered", outcome
        else:
            for _ in range(args.n):
                webhooks.publish("acct", "message.sent", data)
        _callgrind(server.pid, "-i", "off")
        _callgrind(server.pid, "-d")
        time.sleep(1)
    finally:
        server.terminate()
        server.wait(30)
    dumps = sorted(tmp.glob("callgrind.out*"), key=lambda p: p.stat().st_size)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dumps[-1])], capture_output=True,
                          text=True, check=True).stdout
    shutil.rmtree(tmp, ignore_errors=True)
    total = 0
    rows: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S+)", line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = count
        elif ":" in m.group(2):
            rows.append((count, m.group(2).rsplit(":", 1)[-1]))
    what = "attempt (claim + settle)" if args.mode == "attempt" else f"publish to {args.subscriptions} subscriptions"
    print(f"{total / args.n / 1000:,.1f}k instructions per {what} ({args.n} counted)")
    seen: set[str] = set()
    for count, name in rows:
        if name in seen or len(seen) >= args.top:
            continue
        seen.add(name)
        print(f"  {count / args.n / 1000:9.1f}k  {name}")
    return {"instructions": total / args.n}


if __name__ == "__main__":
    main(sys.argv[1:])
