"""The producer outbox: ordered, bounded, durable across a killed process, one flusher at a time."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Iterator

import pytest

from webhooks import outbox as outbox_module
from webhooks.errors import PublishError, ValidationError
from webhooks.outbox import BackgroundFlusher, FlushResult, Outbox, SpooledEvent, _backoff

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 10.0


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "spool" / "outbox.db")
    yield ob
    ob.close()


def put_n(ob: Outbox, n: int) -> list[SpooledEvent]:
    return [ob.put("acct_1", "message.created", f"evt_{i}", {"i": i}) for i in range(n)]


def run_child(code: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that can import webhooks (no fork of this process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=DEADLINE_S,
    )


# -- order and failure ----------------------------------------------------------------------


def test_flush_publishes_in_put_order_and_empties_the_spool(box: Outbox) -> None:
    # Given three spooled events
    put = put_n(box, 3)
    sent: list[SpooledEvent] = []
    # When the outbox is flushed to a working publisher
    result = box.flush(sent.append)
    # Then they are published in order, with their data, and nothing is left
    assert sent == put
    assert [ev.data for ev in sent] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert [ev.seq for ev in sent] == sorted(ev.seq for ev in sent)
    assert result == FlushResult(sent=3, remaining=0, error=None)
    assert box.pending() == 0


def test_flush_stops_at_the_first_failure_and_a_later_flush_resumes_in_order(box: Outbox) -> None:
    # Given five events and a publisher that fails on the third
    put = put_n(box, 5)
    sent: list[str] = []

    def flaky(ev: SpooledEvent) -> None:
        if ev.event_id == "evt_2":
            raise PublishError("redis: connection refused")
        sent.append(ev.event_id)

    # When flushing
    result = box.flush(flaky)
    # Then the first two went, the failing one and everything after stay, in order
    assert sent == ["evt_0", "evt_1"]
    assert result.sent == 2 and result.remaining == 3
    assert result.error is not None and "evt_2" in result.error and "connection refused" in result.error
    assert box.peek() == put[2:]
    # When Redis answers again
    result = box.flush(lambda ev: sent.append(ev.event_id))
    # Then the rest follows in order
    assert sent == ["evt_0", "evt_1", "evt_2", "evt_3", "evt_4"]
    assert result == FlushResult(sent=3, remaining=0, error=None)


def test_flush_limit_sends_only_the_oldest(box: Outbox) -> None:
    # Given four events
    put_n(box, 4)
    sent: list[str] = []
    # When flushing with a limit of 3
    result = box.flush(lambda ev: sent.append(ev.event_id), limit=3)
    # Then the three oldest went and one is left
    assert sent == ["evt_0", "evt_1", "evt_2"]
    assert result == FlushResult(sent=3, remaining=1, error=None)


def test_flush_sends_more_than_one_batch(box: Outbox) -> None:
    # Given more events than one flush batch holds
    n = outbox_module._BATCH * 2 + 7
    put_n(box, n)
    sent: list[int] = []
    # When flushing
    box.flush(lambda ev: sent.append(ev.data["i"]))
    # Then all went, in order
    assert sent == list(range(n))
    assert box.pending() == 0


def test_peek_leaves_events_in_place(box: Outbox) -> None:
    # Given three events
    put = put_n(box, 3)
    # When peeking at two
    # Then the two oldest are shown and all three stay
    assert box.peek(2) == put[:2]
    assert box.pending() == 3


# -- bounds and errors ----------------------------------------------------------------------


def test_the_put_past_the_limit_raises_publish_error_naming_the_limit(tmp_path: Path) -> None:
    # Given an outbox that holds three events and is full
    ob = Outbox(tmp_path / "o.db", max_events=3)
    put_n(ob, 3)
    # When a fourth is put
    with pytest.raises(PublishError) as info:
        ob.put("acct_1", "message.created", "evt_over", {"secret": "payload"})
    # Then it is refused, saying how full, where and which setting; no payload in the message
    msg = str(info.value)
    assert "outbox full: 3 events" in msg and str(tmp_path / "o.db") in msg
    assert "WEBHOOKS_OUTBOX_MAX_EVENTS=3" in msg and "payload" not in msg
    assert ob.pending() == 3
    # And once flushed there is room again
    ob.flush(lambda ev: None)
    ob.put("acct_1", "message.created", "evt_after", {})
    assert ob.pending() == 1
    ob.close()


def test_concurrent_puts_never_overfill_the_spool(tmp_path: Path) -> None:
    # Given an outbox with room for 10 and 8 threads trying to put 5 each
    ob = Outbox(tmp_path / "o.db", max_events=10)
    go = threading.Barrier(8)
    ok: list[int] = []
    refused: list[PublishError] = []

    def producer(t: int) -> None:
        go.wait()
        for i in range(5):
            try:
                ok.append(ob.put("a", "message.created", f"e{t}.{i}", {}).seq)
            except PublishError as exc:
                refused.append(exc)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    # Then exactly 10 got in with distinct seqs, the other 30 were refused as full
    assert len(ok) == 10 and len(set(ok)) == 10
    assert len(refused) == 30 and all("outbox full" in str(e) for e in refused)
    ob.close()


def test_storage_errors_surface_as_publish_error_with_the_path(box: Outbox) -> None:
    # Given a spool whose table vanished under it
    with sqlite3.connect(box.path) as other:
        other.execute("DROP TABLE events")
    # When putting
    with pytest.raises(PublishError) as info:
        box.put("acct_1", "message.created", "evt_1", {"text": "do not leak me"})
    # Then the sqlite error is translated, names the path, and carries no payload
    assert str(box.path) in str(info.value)
    assert "do not leak me" not in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_a_file_that_is_not_a_spool_is_refused_with_publish_error(tmp_path: Path) -> None:
    # Given a file full of garbage where the spool should be
    path = tmp_path / "o.db"
    path.write_bytes(b"not a database" * 100)
    # When opening it as an outbox
    # Then PublishError names the path
    with pytest.raises(PublishError, match=str(path)):
        Outbox(path)


def test_a_closed_outbox_refuses_with_publish_error(tmp_path: Path) -> None:
    # Given a closed outbox
    ob = Outbox(tmp_path / "o.db")
    ob.close()
    ob.close()
    # When putting, then PublishError says it is closed
    with pytest.raises(PublishError, match="closed"):
        ob.put("a", "message.created", "e", {})


def test_data_that_is_not_json_is_bad_input(box: Outbox) -> None:
    # When data cannot be serialized, then it is the caller's error, and nothing is spooled
    with pytest.raises(ValidationError):
        box.put("a", "message.created", "e", {"when": object()})
    assert box.pending() == 0


def test_the_spool_file_is_private_to_its_owner(box: Outbox) -> None:
    # Then the spool (chat data) is not readable by others
    assert stat.S_IMODE(box.path.stat().st_mode) == 0o600


def test_unicode_and_a_50_kb_payload_round_trip(box: Outbox) -> None:
    # Given unicode everywhere and a 50 KB body
    data = {"text": "héllo 👋 مرحبا 你好 \u0000 end", "blob": "x" * 50_000}
    box.put("acct_ü", "custom.größe", "evt_✓", data)
    sent: list[SpooledEvent] = []
    # When flushed
    box.flush(sent.append)
    # Then everything comes back identical
    (ev,) = sent
    assert (ev.account, ev.event_type, ev.event_id) == ("acct_ü", "custom.größe", "evt_✓")
    assert ev.data == data
    assert len(ev.data_json.encode()) > 50_000


# -- durability across a killed process -----------------------------------------------------


def test_an_event_put_just_before_the_process_is_killed_is_pending(tmp_path: Path) -> None:
    # Given a child process that spools one event and is SIGKILLed right after put returns
    path = tmp_path / "o.db"
    child = run_child(
        """
        import os, signal, sys
        from webhooks.outbox import Outbox
        Outbox(sys.argv[1]).put("acct_1", "message.created", "evt_kill", {"n": 1})
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        str(path),
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    # When the parent opens the spool
    ob = Outbox(path)
    # Then the event is there
    assert [(ev.event_id, ev.data) for ev in ob.peek()] == [("evt_kill", {"n": 1})]
    ob.close()


def test_a_crash_between_publish_and_delete_resends_on_the_next_flush(tmp_path: Path) -> None:
    # Given three spooled events, and a flusher process killed right after publishing the second
    path = tmp_path / "o.db"
    log = tmp_path / "sent.log"
    ob = Outbox(path)
    put_n(ob, 3)
    child = run_child(
        """
        import os, signal, sys
        from webhooks.outbox import Outbox

        def publish(ev):
            with open(sys.argv[2], "a") as f:
                f.write(ev.event_id + "\\n")
            if ev.event_id == "evt_1":
                os.kill(os.getpid(), signal.SIGKILL)

        Outbox(sys.argv[1]).flush(publish)
        """,
        str(path), str(log),
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert log.read_text().split() == ["evt_0", "evt_1"]
    # When flushing again
    resent: list[str] = []
    result = ob.flush(lambda ev: resent.append(ev.event_id))
    # Then nothing is lost: what the dead flusher published is sent again (at least once), in order
    assert resent[-1] == "evt_2" and "evt_1" in resent
    assert resent == sorted(resent)
    assert result.remaining == 0
    ob.close()


# -- one flusher at a time ------------------------------------------------------------------


def assert_each_sent_once_in_order(per_flusher: list[list[int]], expected: list[int]) -> None:
    for seqs in per_flusher:
        assert seqs == sorted(seqs), "a flusher sent out of order"
    everything = [s for seqs in per_flusher for s in seqs]
    assert sorted(everything) == expected, "an event was lost or sent twice"


def test_two_flusher_threads_send_each_event_once_and_in_order(tmp_path: Path) -> None:
    # Given 300 events and two threads flushing the same spool through their own Outbox objects
    path = tmp_path / "o.db"
    boxes = [Outbox(path), Outbox(path)]
    seqs = [ev.seq for ev in put_n(boxes[0], 300)]
    sent: list[list[int]] = [[], []]
    go = threading.Barrier(2)

    def flusher(k: int) -> None:
        go.wait()
        boxes[k].flush(lambda ev: sent[k].append(ev.seq))

    threads = [threading.Thread(target=flusher, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    # Then each event went exactly once, each flusher in order
    assert_each_sent_once_in_order(sent, seqs)
    assert boxes[0].pending() == 0
    for ob in boxes:
        ob.close()


def test_two_threads_sharing_one_outbox_send_each_event_once(box: Outbox) -> None:
    # Given 300 events and two threads flushing the same Outbox object
    seqs = [ev.seq for ev in put_n(box, 300)]
    sent: list[list[int]] = [[], []]
    go = threading.Barrier(2)

    def flusher(k: int) -> None:
        go.wait()
        box.flush(lambda ev: sent[k].append(ev.seq))

    threads = [threading.Thread(target=flusher, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    # Then each event went exactly once, each flusher in order
    assert_each_sent_once_in_order(sent, seqs)


def test_two_flusher_processes_send_each_event_once_and_in_order(tmp_path: Path) -> None:
    # Given 300 events and two processes that start flushing on the same signal
    path = tmp_path / "o.db"
    ob = Outbox(path)
    seqs = [ev.seq for ev in put_n(ob, 300)]
    code = textwrap.dedent(
        """
        import sys
        from webhooks.outbox import Outbox
        box = Outbox(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.readline()
        with open(sys.argv[2], "a") as f:
            box.flush(lambda ev: f.write(f"{ev.seq}\\n"))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(log)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for log in logs
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        # When both are told to go at once
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            assert p.wait(DEADLINE_S) == 0, p.stderr.read() if p.stderr else ""
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
    # Then each event went exactly once, each process in order
    sent = [[int(line) for line in log.read_text().split()] if log.exists() else [] for log in logs]
    assert_each_sent_once_in_order(sent, seqs)
    assert ob.pending() == 0
    ob.close()


def test_a_flush_that_cannot_get_the_lock_in_time_says_so_and_sends_nothing(tmp_path: Path) -> None:
    # Given another flusher holding the flush lock, and an outbox that will not wait for it
    ob = Outbox(tmp_path / "o.db", flush_lock_wait_s=0)
    put_n(ob, 2)
    sent: list[SpooledEvent] = []
    with open(tmp_path / "o.db.flush-lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        # When flushing
        result = ob.flush(sent.append)
    # Then nothing was sent and the error names the lock
    assert sent == []
    assert result.sent == 0 and result.remaining == 2
    assert result.error is not None and "flush-lock" in result.error
    ob.close()


# -- background flusher ---------------------------------------------------------------------


class FakeRedis:
    """A publish callable: refuses with PublishError until ``up`` is set, then records events."""

    def __init__(self, expect: int) -> None:
        self.up = threading.Event()
        self.refused_twice = threading.Event()
        self.all_delivered = threading.Event()
        self.refusals = 0
        self.delivered: list[str] = []
        self.expect = expect

    def __call__(self, ev: SpooledEvent) -> None:
        if not self.up.is_set():
            self.refusals += 1
            if self.refusals >= 2:
                self.refused_twice.set()
            raise PublishError("redis: connection refused")
        self.delivered.append(ev.event_id)
        if len(self.delivered) >= self.expect:
            self.all_delivered.set()


def test_background_flusher_delivers_in_order_once_redis_comes_back(box: Outbox) -> None:
    # Given three spooled events and Redis down
    put_n(box, 3)
    redis = FakeRedis(expect=3)
    flusher = BackgroundFlusher(box, redis, interval_s=0.01, max_interval_s=0.05)
    flusher.start()
    try:
        # When it has kept failing for a while
        assert redis.refused_twice.wait(DEADLINE_S)
        assert redis.delivered == [] and box.pending() == 3
        # And Redis answers again
        redis.up.set()
        # Then everything is delivered, in order
        assert redis.all_delivered.wait(DEADLINE_S)
    finally:
        flusher.stop()
    assert redis.delivered == ["evt_0", "evt_1", "evt_2"]
    assert box.pending() == 0


def test_poke_wakes_the_flusher_before_its_interval(box: Outbox) -> None:
    # Given a running flusher that would otherwise sleep for a minute
    redis = FakeRedis(expect=1)
    redis.up.set()
    flusher = BackgroundFlusher(box, redis, interval_s=60, max_interval_s=60)
    flusher.start()
    try:
        # When an event is spooled and the flusher poked
        box.put("acct_1", "message.created", "evt_poked", {})
        flusher.poke()
        # Then it is delivered well before the interval
        assert redis.all_delivered.wait(DEADLINE_S)
    finally:
        flusher.stop()
    assert redis.delivered == ["evt_poked"]


def test_stop_ends_the_flusher_thread(box: Outbox) -> None:
    # Given a running flusher with a long interval
    flusher = BackgroundFlusher(box, lambda ev: None, interval_s=60, max_interval_s=60)
    flusher.start()
    thread = flusher._thread
    assert thread is not None and thread.is_alive()
    # When stopped, then the thread ends at once, not after its interval
    flusher.stop(timeout_s=DEADLINE_S)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("delay", "failed", "expected"),
    [(1.0, False, 1.0), (1.0, True, 2.0), (8.0, True, 16.0), (20.0, True, 30.0), (30.0, False, 1.0)],
)
def test_backoff_doubles_while_failing_up_to_the_cap_and_resets_on_success(
    delay: float, failed: bool, expected: float
) -> None:
    assert _backoff(delay, 1.0, 30.0, failed) == expected


def test_public_names() -> None:
    assert sorted(outbox_module.__all__) == ["BackgroundFlusher", "FlushResult", "Outbox", "SpooledEvent"]
    assert json.loads(SpooledEvent(1, "a", "t", "e", '{"k":1}', 0.0).data_json) == {"k": 1}
