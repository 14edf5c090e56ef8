"""Per-endpoint health figures for ``webhooks status``: success rate over the last hour and
day (minute and hour buckets), recent latency percentiles, last error."""
from __future__ import annotations

import json
import time
from typing import Any

from .connection import get_redis

__all__ = ["record", "summary"]

_LATENCIES_KEPT = 1000


def _k(sub_id: str, what: str) -> str:
    return f"wh:st:{sub_id}:{what}"


def record(sub_id: str, ok: bool, duration_ms: float, error: str | None, *, now: float | None = None,
           pipe: Any = None) -> None:
    """Count one attempt of ``sub_id``. With ``pipe`` the writes join the caller's pipeline."""
    now = time.time() if now is None else now
    field = "ok" if ok else "fail"
    own = pipe is None
    pipe = get_redis().pipeline(transaction=False) if own else pipe
    mk, hk = _k(sub_id, f"m{int(now // 60)}"), _k(sub_id, f"h{int(now // 3600)}")
    pipe.hincrby(mk, field, 1)
    pipe.expire(mk, 3900)
    pipe.hincrby(hk, field, 1)
    pipe.expire(hk, 90000)
    pipe.lpush(_k(sub_id, "lat"), round(duration_ms, 1))
    pipe.ltrim(_k(sub_id, "lat"), 0, _LATENCIES_KEPT - 1)
    pipe.expire(_k(sub_id, "lat"), 90000)
    if not ok:
        pipe.set(_k(sub_id, "last_error"), json.dumps({"at": now, "error": error}), ex=30 * 86400)
    else:
        pipe.set(_k(sub_id, "last_ok"), repr(now), ex=30 * 86400)
    if own:
        pipe.execute()


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
