"""Render config/grafana/chat-webhooks.json from a live Prometheus as a PNG, without Grafana.

Grafana is not packaged for Debian and cannot run here from Docker, so docs/grafana-dashboard.png
was made with this: every panel's queries are sent to a real Prometheus (the same PromQL the
dashboard sends, Grafana's $__rate_interval replaced by 1m), drawn on the dashboard's own grid as
an HTML page with inline SVG, and screenshotted by headless Chromium. The numbers are real; the
look only imitates Grafana's.

    python docs/render_dashboard.py --prometheus http://127.0.0.1:9090 --minutes 8 --out docs/grafana-dashboard.png
"""
from __future__ import annotations

import argparse
import html
import json
import math
import re
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "config" / "grafana" / "chat-webhooks.json"
WIDTH, ROW_H, GAP = 1600, 30, 8
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#96d98d"]
# Fixed colours for the series that mean something (green is good, red is lost), like overrides would.
NAMED = {"delivered": "#73bf69", "2xx": "#73bf69", "dead": "#f2495c", "discarded": "#8ab8ff", "5xx": "#ff780a",
         "4xx": "#f2cc0c", "3xx": "#fade2a", "timeout": "#b877d9", "connect": "#e0752d", "tls": "#5794f2",
         "refused": "#c4162a", "other": "#8e8e8e", "countdown": "#8ab8ff", "parked": "#f2cc0c", "p50": "#73bf69",
         "p95": "#f2cc0c", "p99": "#f2495c", "open": "#f2495c", "half_open": "#ff9830"}
_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def _query(prom: str, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"{prom}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{params['query']}: {body}")
    return list(body["data"]["result"])


def _expr(expr: str) -> str:
    for var, value in _VARS.items():
        expr = expr.replace(var, value)
    return expr


def _legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or json.dumps(labels)


def _fmt(v: float, unit: str | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"
    if unit == "reqps":
        return f"{v:.2f}/s" if v < 10 else f"{v:.0f}/s"
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 100 else f"{v:.2f}"


def _threshold_color(p: dict[str, Any], v: float) -> str:
    steps = p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
    if not steps or v is None or math.isnan(v):
        return "#73bf69"
    color = steps[0]["color"]
    for step in steps[1:]:
        if v >= step["value"]:
            color = step["color"]
    return {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c"}.get(color, color)


def _stat(p: dict[str, Any], prom: str, end: float, w: int, h: int) -> str:
    t = p["targets"][0]
    res = _query(prom, "query", {"query": _expr(t["expr"]), "time": end})
    v = float(res[0]["value"][1]) if res else float("nan")
    unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
    return (f'<div class="stat" style="color:{_threshold_color(p, v)}">{html.escape(_fmt(v, unit))}</div>')


def _timeseries(p: dict[str, Any], prom: str, start: float, end: float, step: float, w: int, h: int) -> str:
    unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
    stacked = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("stacking", {}).get("mode") == "normal"
    series: list[tuple[str, list[tuple[float, float]]]] = []
    for t in p["targets"]:
        for r in _query(prom, "query_range", {"query": _expr(t["expr"]), "start": start, "end": end, "step": step}):
            pts = [(float(ts), float(v)) for ts, v in r["values"] if not math.isnan(float(v))]
            series.append((_legend(t.get("legendFormat", ""), r["metric"]), pts))
    series.sort(key=lambda s: s[0])
    pw, ph = w - 70, h - 80
    if stacked:  # cumulative sums at each timestamp
        acc: dict[float, float] = {}
        stacked_series = []
        for name, pts in series:
            new = []
            for ts, v in pts:
                acc[ts] = acc.get(ts, 0.0) + v
                new.append((ts, acc[ts]))
            stacked_series.append((name, new))
        series = stacked_series
    vmax = max((v for _, pts in series for _, v in pts), default=1.0) or 1.0
    vmax *= 1.1

    def xy(ts: float, v: float) -> str:
        return f"{55 + (ts - start) / (end - start) * pw:.1f},{10 + ph - v / vmax * ph:.1f}"

    parts = [f'<svg width="{w - 16}" height="{h - 40}">']
    for i in range(5):
        y = 10 + ph - i / 4 * ph
        parts.append(f'<line x1="55" x2="{55 + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="50" y="{y + 4:.1f}" class="axis" text-anchor="end">{html.escape(_fmt(vmax * i / 4, unit))}</text>')
    for i in range(5):
        ts = start + i / 4 * (end - start)
        anchor = "end" if i == 4 else "middle"
        parts.append(f'<text x="{55 + i / 4 * pw:.1f}" y="{ph + 26}" class="axis" text-anchor="{anchor}">'
                     f'{time.strftime("%H:%M", time.gmtime(ts))}</text>')
    prev = None
    for i, (name, pts) in enumerate(series):
        if not pts:
            continue
        color = NAMED.get(name, COLORS[i % len(COLORS)])
        line = " ".join(xy(ts, v) for ts, v in pts)
        if stacked:
            base = " ".join(xy(ts, v) for ts, v in reversed(prev)) if prev else f"{xy(pts[-1][0], 0)} {xy(pts[0][0], 0)}"
            parts.append(f'<polygon points="{line} {base}" fill="{color}" fill-opacity="0.25" stroke="none"/>')
            prev = pts
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6"/>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{NAMED.get(name, COLORS[i % len(COLORS)])}"></i>'
                     f'{html.escape(name)}</span>' for i, (name, _) in enumerate(series))
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def render(prom: str, minutes: float, end: float | None = None) -> tuple[str, int]:
    dash = json.loads(DASHBOARD.read_text())
    end = end or time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 240)
    col = (WIDTH - GAP) / 24
    blocks, bottom = [], 0
    for p in dash["panels"]:
        g = p["gridPos"]
        x, y, w, h = g["x"] * col + GAP, g["y"] * (ROW_H + GAP) + 60, g["w"] * col - GAP, g["h"] * (ROW_H + GAP) - GAP
        bottom = max(bottom, int(y + h))
        style = f"left:{x:.0f}px;top:{y:.0f}px;width:{w:.0f}px;height:{h:.0f}px"
        if p["type"] == "row":
            blocks.append(f'<div class="row" style="{style}">{html.escape(p["title"])}</div>')
            continue
        body = _stat(p, prom, end, int(w), int(h)) if p["type"] == "stat" else _timeseries(p, prom, start, end, step, int(w), int(h))
        blocks.append(f'<div class="panel" style="{style}"><div class="title">{html.escape(p["title"])}</div>{body}</div>')
    span = f'{time.strftime("%Y-%m-%d %H:%M", time.gmtime(start))} to {time.strftime("%H:%M UTC", time.gmtime(end))}'
    page = f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin:0; background:#111217; font-family: Inter, 'DejaVu Sans', sans-serif; color:#ccccdc; }}
.top {{ position:absolute; left:{GAP}px; top:14px; font-size:18px; color:#d8d9da; }}
.top small {{ color:#8e8e8e; font-size:13px; margin-left:14px; }}
.panel {{ position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:3px; box-sizing:border-box; padding:6px 8px; overflow:hidden; }}
.row {{ position:absolute; font-size:15px; color:#d8d9da; padding-top:6px; }}
.title {{ font-size:13px; font-weight:500; color:#ccccdc; margin-bottom:4px; }}
.stat {{ font-size:40px; font-weight:500; text-align:center; margin-top:22px; }}
.grid {{ stroke:#2c3235; stroke-width:1; }} .axis {{ fill:#8e8e8e; font-size:10px; }}
.legend {{ font-size:11px; color:#ccccdc; margin-top:-4px; }}
.key {{ margin-right:12px; white-space:nowrap; }} .key i {{ display:inline-block; width:12px; height:3px; margin:0 4px 3px 0; }}
</style></head><body><div class="top">chat-webhooks <small>{html.escape(dash.get("description", ""))} · {span}</small></div>
{''.join(blocks)}</body></html>"""
    return page, bottom + GAP


def screenshot(page: str, height: int, out: Path, chromium: str = "chromium") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "dashboard.html"
        src.write_text(page)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}/profile",
                        "--hide-scrollbars", f"--window-size={WIDTH},{height}", f"--screenshot={out.resolve()}",
                        src.as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--minutes", type=float, default=15.0, help="time range shown, ending now (or at --end)")
    ap.add_argument("--end", type=float, default=None, help="unix time the range ends at")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "grafana-dashboard.png")
    ap.add_argument("--html", type=Path, default=None, help="also keep the HTML page here")
    args = ap.parse_args()
    page, height = render(args.prometheus.rstrip("/"), args.minutes, args.end)
    if args.html:
        args.html.write_text(page)
    screenshot(page, height, args.out)
    print(f"wrote {args.out} ({WIDTH}x{height})")


if __name__ == "__main__":
    main()
