"""The fleet's configuration logic: Sentinel URLs, the recovery rule, the Celery shape, and the
heartbeat's choice of tags and liveness verdicts (fast; the real processes are in tests/faults)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from webhooks import liveness, recovery, sentinel
from webhooks.errors import ConfigurationError
from webhooks.settings import Settings
from workers.config import celery_config
from workers.heartbeat import held_tags


def test_a_sentinel_url_names_the_sentinels_the_primary_its_db_and_passwords():
    u = sentinel.parse("sentinel://:pw%40x@10.0.0.1:26380,10.0.0.2,[::1]:5000/3?master=main&sentinel_password=sp")
    assert u.sentinels == (("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 5000))
    assert (u.master, u.db, u.password, u.sentinel_password) == ("main", 3, "pw@x", "sp")
    assert u.kombu_url() == ("sentinel://:pw%40x@10.0.0.1:26380/3;sentinel://:pw%40x@10.0.0.2:26379/3;"
                             "sentinel://:pw%40x@[::1]:5000/3")
    assert u.sentinel_kwargs(5, 2) == {"socket_timeout": 5, "socket_connect_timeout": 2, "password": "sp"}
    assert "pw" not in repr(u)


def test_kombus_own_spelling_is_accepted():
    u = sentinel.parse("sentinel://h1:1;sentinel://h2:2/0?master_name=m")
    assert u.sentinels == (("h1", 1), ("h2", 2)) and u.master == "m" and u.password is None


def test_a_sentinel_url_without_the_primarys_name_is_refused_at_start_without_showing_the_password():
    with pytest.raises(ConfigurationError, match=r"\?master=") as err:
        Settings(redis_url="sentinel://:topsecret@h1:26379")
    assert "topsecret" not in str(err.value)


def test_the_broker_uses_the_sentinel_transport_and_retries_channel_errors():
    conf = celery_config(Settings(redis_url="sentinel://:pw@h1,h2/0?master=main&sentinel_password=sp"))
    assert conf["broker_transport"] == "workers.sentinel_transport:Transport"
    assert conf["broker_url"] == "sentinel://:pw@h1:26379/0;sentinel://:pw@h2:26379/0"
    opts = conf["broker_transport_options"]
    assert opts["master_name"] == "main"
    assert opts["sentinel_kwargs"]["password"] == "sp" and opts["sentinel_kwargs"]["socket_timeout"] == 5
    assert conf["broker_channel_error_retry"] is True
    assert celery_config(Settings())["broker_transport"] == "workers.transport:Transport"


def test_the_bare_worker_shape_is_configured():
    conf = celery_config(Settings(worker_concurrency=48, worker_events=True))
    assert [q.name for q in conf["task_queues"]] == ["deliveries", "retries"]
    assert all(q.routing_key == q.name and q.exchange.name == q.name for q in conf["task_queues"])
    assert (conf["worker_pool"], conf["worker_concurrency"], conf["worker_send_task_events"]) == ("threads", 48, True)
    assert conf["beat_scheduler"] == "workers.beat:Scheduler"


def test_default_recovery_brings_a_dead_workers_messages_back_within_45_s():
    s = Settings()
    opts = celery_config(s)["broker_transport_options"]
    beat = recovery.heartbeat_interval_s(s.visibility_timeout_s)
    assert (s.visibility_timeout_s, beat, opts["unacked_restore_interval"], opts["unacked_restore_throttle"]) == (40, 8, 5, 1)
    assert s.visibility_timeout_s + opts["unacked_restore_interval"] <= 45
    assert opts["unacked_mutex_expire"] <= 10
    assert s.progress_deadline_s == 50
    # ... and a countdown cap far longer than the timeout is accepted (the heartbeat keeps it)
    assert s.max_countdown_s == 600


def test_a_visibility_timeout_without_margin_for_the_heartbeat_is_refused():
    with pytest.raises(ConfigurationError, match="WEBHOOKS_VISIBILITY_TIMEOUT_S=10 is too short"):
        Settings(visibility_timeout_s=10)
    with pytest.raises(ConfigurationError, match="WEBHOOKS_TOTAL_TIMEOUT_S=30"):
        Settings(visibility_timeout_s=40, total_timeout_s=30, connect_timeout_s=5)
    Settings(visibility_timeout_s=50, total_timeout_s=30, connect_timeout_s=5)


def test_the_heartbeat_rescores_held_tags_only():
    qos = SimpleNamespace(_delivered={"a": 1, "b": 2, "c": 3}, _dirty={"b"})
    assert held_tags(qos) == ["a", "c"]


def test_liveness_is_fresh_only_for_a_running_process_that_refreshed_recently(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WEBHOOKS_HEALTH_DIR", str(tmp_path))
    from webhooks.settings import reload_settings

    reload_settings()
    try:
        assert not liveness.check("worker").healthy  # no file
        path = liveness.worker_file("celery@host")
        liveness.touch(path)
        assert liveness.check("worker").healthy and liveness.check("worker", node="celery@host").healthy
        old = time.time() - 20
        os.utime(path, (old, old))
        stale = liveness.check("worker")
        assert not stale.healthy and "more than 15s" in stale.reason
        # a file left by a process that no longer runs does not count
        path.write_text(json.dumps({"pid": 2 ** 22 + 7}))
        assert "no running worker" in liveness.check("worker").reason
        assert liveness.main(["beat"]) == 1
    finally:
        monkeypatch.undo()
        reload_settings()
