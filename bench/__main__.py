"""``python -m bench`` (``make bench``): every benchmark in turn, each in its own process.

    python -m bench [--quick] [--only sidebyside,publish,throughput,isolation]

1. ``bench.sidebyside``: our worker against the plain Celery task, the README table (about
   10 minutes at its defaults on a 2-core machine; it starts its own redis-server and receiver);
2. ``bench.publish``: ``publish()`` to 10 subscriptions, p50/p99, against 10 ``apply_async``;
3. ``bench.throughput``: one worker's rate against instant endpoints and against endpoints
   that answer after 100 ms (the ratio must stay >= 0.9);
4. ``bench.isolation``: healthy endpoints' rate with one hanging endpoint among ten.

Each runs in a process of its own, so one's environment (settings, clients, workers) cannot
leak into the next. Unless BENCH_REDIS_URL is set, 2-4 get a private redis-server started here
(the repository's config, a free port), so no other user of the machine's Redis adds to their
figures and nothing is written to a shared database. ``--quick`` runs every part short, for
development (a few minutes). Chaos (``python -m bench.chaos``, ``make chaos``) is a soak
test, not a figure: it is left out.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS: dict[str, tuple[list[str], list[str]]] = {
    # name: (full arguments, --quick arguments)
    # ours as deployed: secrets encrypted at rest (the default since this release)
    "sidebyside": (["--encrypt"], ["--quick", "--encrypt"]),
    "publish": ([], ["--events", "300"]),
    "throughput": (["--events", "200"], ["--events", "50", "--runs", "1"]),
    "isolation": ([], ["--events", "50", "--runs", "1"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs of every part, for development")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts (default: {','.join(PARTS)})")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        ap.error(f"--only: unknown part {', '.join(unknown)} (choose from {', '.join(PARTS)})")

    from tests.support.worker import ROOT, _die_with_parent

    from .harness.redisproc import PrivateRedis

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    redis = None
    failed = []
    try:
        if "BENCH_REDIS_URL" not in os.environ and any(n != "sidebyside" for n in names):
            redis = PrivateRedis(Path(tempfile.mkdtemp(prefix="bench-redis-"))).start()
            env["BENCH_REDIS_URL"] = redis.url(14)
        for name in names:
            full, quick = PARTS[name]
            cmd = [sys.executable, "-m", f"bench.{name}", *(quick if args.quick else full)]
            print(f"== {' '.join(['python', *cmd[1:]])}", flush=True)
            t0 = time.monotonic()
            rc = subprocess.run(cmd, cwd=ROOT, env=env, preexec_fn=_die_with_parent).returncode
            print(f"   ({time.monotonic() - t0:.0f} s{'' if rc == 0 else f', exit {rc}'})", flush=True)
            print(flush=True)
            if rc != 0:
                failed.append(name)
    finally:
        if redis is not None:
            redis.stop()
            shutil.rmtree(redis.dir, ignore_errors=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
