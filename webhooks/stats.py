"""Per-endpoint health figures for ``webhooks status``: success rate over the last hour and
day (minute and hour buckets), recent latency percentiles, last error. Written by the
state machine's ``settle`` (one call per attempt); read here."""
from __future__ import annotations

import json
import time
from typing import Any

from .connection import get_redis
from .keys import K

__all__ = ["summary"]



def _k(sub_id: str, what: str) -> str:
    return K.stats(sub_id, what)


def _rate(rows: list[list[bytes | None]]) -> tuple[int, int, float | None]:
    ok = sum(int(r[0] or 0) for r in rows)
    fail = sum(int(r[1] or 0) for r in rows)
    return ok, fail, (ok / (ok + fail) if ok + fail else None)


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def summary(sub_id: str, *, now: float | None = None) -> dict[str, Any]:
    """{"hour": {ok, fail, rate}, "day": {...}, "p50_ms", "p95_ms", "last_error", "last_ok"}."""
    now = time.time() if now is None else now
    r = get_redis()
    pipe = r.pipeline(transaction=False)
    m0, h0 = int(now // 60), int(now // 3600)
    for m in range(m0 - 59, m0 + 1):
        pipe.hmget(_k(sub_id, f"m{m}"), "ok", "fail")
    for h in range(h0 - 23, h0 + 1):
        pipe.hmget(_k(sub_id, f"h{h}"), "ok", "fail")
    pipe.lrange(_k(sub_id, "lat"), 0, -1)
    pipe.get(_k(sub_id, "last_error"))
    pipe.get(_k(sub_id, "last_ok"))
    res = pipe.execute()
    hour, day = _rate(res[:60]), _rate(res[60:84])
    lat = [float(x) for x in res[84]]
    last_error = json.loads(res[85]) if res[85] else None
    return {
        "hour": {"ok": hour[0], "fail": hour[1], "rate": hour[2]},
        "day": {"ok": day[0], "fail": day[1], "rate": day[2]},
        "p50_ms": _pct(lat, 0.50),
        "p95_ms": _pct(lat, 0.95),
        "last_error": last_error,
        "last_ok": float(res[86]) if res[86] else None,
    }
