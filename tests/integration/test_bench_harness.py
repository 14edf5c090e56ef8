"""The side-by-side bench measures what it says: the plain yardstick signs and retries like a
real sender, the receivers log every POST, and the Redis counters mean what the table claims
(commands inside Lua counted, a pipeline one round trip). Private redis-server and receiver
processes only: nothing here touches the shared Redis."""
from __future__ import annotations

import base64
import http.client
import json
import secrets
from pathlib import Path

import pytest

from bench.harness.counters import RedisCounters, Snapshot, redis_counters, tree_cpu_s
from bench.harness.receiver import AccessLog, start_receiver
from bench.harness.redisproc import PrivateRedis
from tests.support.receiver import Receiver, Reply

pytestmark = pytest.mark.integration


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def test_plain_task_signs_standard_webhooks_and_raises_for_5xx_so_celery_retries(test_ca, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("requests")  # the bench extra
    import requests

    import webhooks
    from bench.plain import app as plain
    from webhooks import events

    secret = _secret()
    monkeypatch.setattr(plain, "SECRETS", {"sub0": secret})
    monkeypatch.setattr(plain, "CA_BUNDLE", test_ca.ca_pem_path)
    payload = events.build_envelope("message.sent", events.sample("message.sent"))
    with Receiver(test_ca) as rcv:
        rcv.script("/hook", [Reply(status=503)])
        with pytest.raises(requests.HTTPError):
            plain.send_webhook.run(rcv.url("/hook"), "sub0", payload)
        assert plain.send_webhook.run(rcv.url("/hook"), "sub0", payload) == 200
        got = rcv.requests_for("/hook")
    assert len(got) == 2
    assert got[1].headers["webhook-id"] == payload["id"]
    # The same body as ours (compact JSON; ours sorts the keys, a typical user does not).
    assert json.loads(got[1].body) == payload and len(got[1].body) == len(events.serialize(payload))
    webhooks.verify(secret, got[1].body, got[1].headers)  # raises SignatureError if wrong
    assert requests.RequestException in plain.send_webhook.autoretry_for
    assert plain.send_webhook.acks_late and plain.app.conf.worker_prefetch_multiplier == 1


@pytest.mark.parametrize("kind", ["asyncio", "nginx"])
def test_receiver_logs_every_post_with_its_webhook_id_over_one_keepalive_connection(test_ca, tmp_path: Path,
                                                                                   kind: str) -> None:
    import shutil

    if kind == "nginx" and not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("nginx is not installed")
    rcv = start_receiver(test_ca, tmp_path / kind, kind)
    try:
        log = AccessLog(rcv.log_path)
        conn = http.client.HTTPSConnection("127.0.0.1", rcv.port, context=test_ca.client_context(), timeout=5)
        for i in range(3):
            conn.request("POST", f"/plain/{i}?x=1", body=b'{"a":1}',
                         headers={"webhook-id": f"msg_{i}", "webhook-signature": "v1,abc v1,def"})
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"ok")
        conn.close()
        log.wait_for(3, 5)
        assert [(h.webhook_id, h.path, h.status, h.signature) for h in log.hits] == [
            (f"msg_{i}", f"/plain/{i}", 200, "v1,abc v1,def") for i in range(3)]
        # The pid whose CPU the bench reads is the process that listens (nginx runs as one process).
        import psutil

        listening = [c.laddr.port for c in psutil.Process(rcv.pid).net_connections("tcp") if c.status == "LISTEN"]
        assert listening == [rcv.port]
        assert tree_cpu_s([rcv.pid]) >= 0.0
    finally:
        rcv.stop()
    assert rcv.proc.poll() is not None


def test_redis_counters_count_commands_inside_lua_and_one_round_trip_per_pipeline(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        r = server.client()
        script = r.register_script("redis.call('SET', KEYS[1], 1); redis.call('INCR', KEYS[1]); "
                                   "return redis.call('GET', KEYS[1])")
        script(keys=["k"])  # loads it (EVALSHA, NOSCRIPT, EVAL) before the window
        a = redis_counters(r)
        pipe = r.pipeline(transaction=False)
        for i in range(5):
            pipe.set(f"p{i}", i)
        pipe.execute()
        assert script(keys=["k"]) == b"2"
        b = redis_counters(r)
        assert b.commands - a.commands == 5 + 1 + 3  # the pipeline's SETs, EVALSHA and its three calls
        assert b.scripts - a.scripts == 1
        assert b.reads - a.reads == 3  # the pipeline, the EVALSHA, and b's own INFO
        assert b.cpu_s >= a.cpu_s
    finally:
        server.stop()


def test_window_figures_are_per_delivery_and_leave_out_the_benchs_own_info() -> None:
    from bench.sidebyside import _window

    a = Snapshot(0.0, 100, 1.0, 0.5, RedisCounters(cpu_s=2.0, commands=1000, scripts=10, reads=300))
    b = Snapshot(5.0, 1100, 3.0, 0.6, RedisCounters(cpu_s=2.5, commands=10000, scripts=1010, reads=3301))
    w = _window(a, b)
    assert w["deliveries"] == 1000
    assert w["worker_us"] == pytest.approx(2000.0)
    assert w["redis_us"] == pytest.approx(500.0)
    assert w["receiver_us"] == pytest.approx(100.0)
    assert w["commands"] == pytest.approx(9.0)
    assert w["scripts"] == pytest.approx(1.0)
    assert w["round_trips"] == pytest.approx(3.0)


def test_a_missed_redis_target_is_followed_by_where_each_side_spends_it() -> None:
    from bench.sidebyside import Results, Run, render

    def run(side: str, redis_us: float, per_command: dict[str, tuple[float, float]]) -> Run:
        return Run(side, "one", 100.0, 1000, 4000.0, redis_us, 100.0, 9.0, 0.0, 3.0, 0, 10.0, per_command=per_command)

    res = Results(runs=[
        run("plain", 300.0, {"brpop": (1, 20.0), "multi": (2, 3.0), "exec": (2, 45.0), "zadd": (1, 25.0)}),
        run("ours", 600.0, {"brpop": (1, 18.0), "evalsha": (2, 360.0), "zadd": (3, 36.0), "hset": (3, 14.0)}),
    ])
    text = render(res, ["one"], "header", "machine")
    # Then the plain side's calls (EXEC counts the commands inside it), ours' scripts split into
    # the commands they run and the Lua around them, and what is spent around the calls
    assert "plain: 300 µs = 68 inside the calls clients send (exec 45, brpop 20, multi 3); 232 around" in text
    assert "ours : 600 µs = 378 inside" in text and "of the scripts' 360, 50 in the 6 commands they run and 310" in text
    assert "222 around the calls" in text and "next step" in text
    # and a side by side within the target prints no profile
    res.runs[1] = run("ours", 400.0, res.runs[1].per_command)
    assert "over its target" not in render(res, ["one"], "header", "machine")
