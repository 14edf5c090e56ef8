"""The CLI speaks one vocabulary (issue 13 item 3) and cannot be used to forge output or exhaust
memory (issue 10 item 7): typed JSON from every --json command, yes/no and aligned tables,
control characters escaped, bounded file reads, --yes before destructive changes on a terminal,
no audit entry for a change that changes nothing. Real redis-server of this module's own
(published deliveries stay in it), the CLI in a subprocess."""
from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import webhooks
from webhooks import audit, deadletters, events
from tests.support.worker import ROOT

pytestmark = pytest.mark.integration

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# The field names docs/cli.md promises: times, integers and numbers wherever they appear.
TIME_FIELDS = {"at", "created", "updated", "created_at", "updated_at", "died_at", "rotation_grace_until", "opened_at",
               "retry_at", "last_ok", "since", "due", "delivered_at"}
INT_FIELDS = {"attempts", "retries", "last_status", "duplicates", "number", "replays", "reconciled", "v"}
FLOAT_FIELDS = {"duration_ms", "rate_limit_per_s"}


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**own_env, "WEBHOOKS_OUTBOX": str(tmp_path_factory.mktemp("outbox") / "outbox.sqlite")}


def cli(env: dict[str, str], *args: str, stdin: Any = subprocess.DEVNULL, cwd: Path = ROOT,
        memory_cap_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def cap() -> None:  # a regression must fail this test, not the machine
        if memory_cap_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap_bytes, memory_cap_bytes))

    return subprocess.run([sys.executable, "-m", "webhooks", *args], cwd=cwd, stdin=stdin, preexec_fn=cap,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=90)


def json_of(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = cli(env, *args, "--json")
    assert result.returncode == code, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def untyped_values(value: Any, path: str = "$") -> list[str]:
    """Every place where ``value`` breaks the JSON vocabulary of docs/cli.md."""
    bad: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{k}"
            if k == "headers" and isinstance(v, dict):
                continue  # HTTP header values are text by nature
            if k in TIME_FIELDS:
                if not (v is None or (isinstance(v, str) and ISO_UTC.match(v))):
                    bad.append(f"{here}={v!r} is not an ISO 8601 UTC time")
                continue
            if k in INT_FIELDS | FLOAT_FIELDS and isinstance(v, str):
                bad.append(f"{here}={v!r} is a number as text")
            bad += untyped_values(v, here)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad += untyped_values(v, f"{path}[{i}]")
    elif isinstance(value, str):
        try:
            float(value)
        except ValueError:
            pass
        else:
            bad.append(f"{path}={value!r} is a number as text")
        if value in ("True", "False", "true", "false"):
            bad.append(f"{path}={value!r} is a boolean as text")
    return bad


@pytest.fixture
def sub(configured: dict[str, str], account: str) -> dict[str, Any]:
    return json_of(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/hook",
                   "--event", "conversation.ended", "--description", "CRM")


def test_every_json_output_is_typed_numbers_booleans_and_iso_times(configured, account, sub):
    # Given a subscription with one published delivery that died (and an attempt logged by send-test)
    published = webhooks.publish(account, "conversation.ended", events.sample("conversation.ended"))
    (delivery_id,) = published.delivery_ids
    assert deadletters.record(delivery_id, "exhausted", error="http_500")
    a = ("--account", account)
    outputs: dict[str, Any] = {
        "subscriptions show": json_of(configured, "subscriptions", "show", *a, sub["id"]),
        "subscriptions list": json_of(configured, "subscriptions", "list", *a),
        "subscriptions update": json_of(configured, "subscriptions", "update", *a, sub["id"], "--rate-limit", "5"),
        "subscriptions rotate-secret": json_of(configured, "subscriptions", "rotate-secret", *a, sub["id"]),
        "subscriptions disable": json_of(configured, "subscriptions", "disable", *a, sub["id"]),
        "subscriptions enable": json_of(configured, "subscriptions", "enable", *a, sub["id"]),
        "subscriptions preview": json_of(configured, "subscriptions", "preview", *a, sub["id"], "--sample", "conversation.ended"),
        "send-test": json_of(configured, "send-test", *a, sub["id"], code=1),
        "events": json_of(configured, "events"),
        "deliveries": json_of(configured, "deliveries", *a, "--attempts"),
        "dead-letters list": json_of(configured, "dead-letters", "list", *a),
        "dead-letters show": json_of(configured, "dead-letters", "show", *a, delivery_id),
        "status": json_of(configured, "status", *a, "--ledger"),
        "audit": json_of(configured, "audit", *a),
        "outbox status": json_of(configured, "outbox", "status"),
        "outbox flush": json_of(configured, "outbox", "flush"),
        "dead-letters purge": json_of(configured, "dead-letters", "purge", *a, "--all"),
        "subscriptions delete": json_of(configured, "subscriptions", "delete", *a, sub["id"]),
    }
    outputs["subscriptions create"] = sub
    # Then nothing anywhere is a number or a boolean spelled as text, and every time is ISO 8601 UTC
    problems = {name: untyped_values(out) for name, out in outputs.items()}
    assert {name: p for name, p in problems.items() if p} == {}
    # And the values a script reads have their types
    assert isinstance(sub["created_at"], str) and sub["enabled"] is True and sub["rate_limit_per_s"] is None
    delivery = next(d for d in outputs["deliveries"] if d["id"] == delivery_id)
    assert delivery["retries"] == 0 and isinstance(delivery["attempts"], int) and ISO_UTC.match(delivery["created"])
    test_delivery = next(d for d in outputs["deliveries"] if d["id"] == outputs["send-test"]["delivery_id"])
    assert test_delivery["attempts"] == 1 and test_delivery["status"] == "discarded"
    assert isinstance(test_delivery["attempt_log"][0]["duration_ms"], float) and ISO_UTC.match(test_delivery["attempt_log"][0]["at"])
    (dead,) = outputs["dead-letters list"]
    assert dead["delivery_id"] == delivery_id and dead["attempts"] == 0 and ISO_UTC.match(dead["died_at"])
    assert outputs["subscriptions update"]["rate_limit_per_s"] == 5.0
    assert outputs["subscriptions disable"] == {"id": sub["id"], "enabled": False, "disabled_reason": "disabled by operator",
                                                "changed": True}
    assert outputs["send-test"]["ok"] is False and isinstance(outputs["send-test"]["duration_ms"], float)
    (row,) = outputs["status"]["subscriptions"]
    assert row["enabled"] is True and row["dead_letters"] == 1 and row["queued"] == 0
    assert ISO_UTC.match(outputs["status"]["ledger"]["since"]) and outputs["status"]["ledger"]["total"]["enqueued"] == 2
    assert all(ISO_UTC.match(e["at"]) for e in outputs["audit"])
    assert outputs["outbox status"] == {"pending": 0} and outputs["dead-letters purge"] == {"purged": 1}
    assert outputs["subscriptions delete"] == {"id": sub["id"], "deleted": True}


def test_listings_say_yes_and_no_in_aligned_columns(configured, account, sub):
    # Given two subscriptions, one disabled
    other = json_of(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/long-path-here",
                    "--event", "message.sent", "--event", "rating.submitted")
    assert cli(configured, "subscriptions", "disable", "--account", account, other["id"]).returncode == 0
    # When they are listed
    lines = cli(configured, "subscriptions", "list", "--account", account).stdout.splitlines()
    # Then the ENABLED column says yes / no (never True / False), and every column starts at its title
    header, *rows = lines
    assert len(rows) == 2 and "True" not in "\n".join(lines) and "False" not in "\n".join(lines)
    start = header.index("ENABLED")
    assert sorted(r[start:].split()[0] for r in rows) == ["no", "yes"]
    for title in ("URL", "EVENTS", "ENABLED", "DESCRIPTION"):
        col = header.index(title)
        assert all(r[col - 2:col] == "  " and r[col] != " " for r in rows if len(r) > col), title


def test_control_characters_in_stored_text_are_shown_escaped_and_forge_nothing(configured, account):
    # Given a description that would erase the previous line, and an actor with a newline and a fake entry
    erase = "ok\x1b[1A\x1b[2Kgone"
    forged_actor = "alice\n2026-01-01 00:00:00Z  delete  sub_x  root"
    created = json_of(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x",
                      "--event", "message.sent", "--description", erase, "--actor", forged_actor)
    # When the listing, the subscription and the audit log are printed for people
    listing = cli(configured, "subscriptions", "list", "--account", account).stdout
    shown = cli(configured, "subscriptions", "show", "--account", account, created["id"]).stdout
    audit_out = cli(configured, "audit", "--account", account).stdout
    # Then no control character reaches the terminal; each is shown as an escape
    for out in (listing, shown, audit_out):
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f]", out), repr(out)
    assert "ok\\x1b[1A\\x1b[2Kgone" in listing and "ok\\x1b[1A\\x1b[2Kgone" in shown
    # And the audit log has one line per entry: the newline in the actor forged none
    assert len(audit_out.splitlines()) == 1 + len(audit.entries(account)) == 2
    assert "alice\\n2026-01-01" in audit_out
    # While JSON keeps the text exactly as stored
    assert json_of(configured, "subscriptions", "show", "--account", account, created["id"])["description"] == erase


def test_enabling_an_enabled_or_disabling_a_disabled_subscription_changes_nothing_and_says_so(configured, account, sub):
    before = len(audit.entries(account))
    # When an enabled subscription is enabled
    result = cli(configured, "subscriptions", "enable", "--account", account, sub["id"])
    # Then the CLI says nothing changed, and no audit entry claims a change
    assert result.returncode == 0 and result.stdout == f"{sub['id']} was already enabled; nothing changed\n"
    assert len(audit.entries(account)) == before
    # When it is disabled twice
    assert cli(configured, "subscriptions", "disable", "--account", account, sub["id"], "--reason", "maintenance").returncode == 0
    again = cli(configured, "subscriptions", "disable", "--account", account, sub["id"], "--reason", "other")
    # Then one disable is audited, the second says so, and the first reason stays
    assert again.stdout == f"{sub['id']} was already disabled; nothing changed\n"
    assert [e["action"] for e in audit.entries(account)][: len(audit.entries(account)) - before] == ["disable"]
    assert webhooks.subscriptions.get(account, sub["id"]).disabled_reason == "maintenance"
    assert json_of(configured, "subscriptions", "enable", "--account", account, sub["id"])["changed"] is True


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (controller fd, the terminal end the CLI gets as stdin)."""
    controller, term = os.openpty()
    yield controller, term
    os.close(controller)
    os.close(term)


@pytest.mark.parametrize("command", [("subscriptions", "delete"), ("dead-letters", "purge")])
def test_destructive_commands_ask_on_a_terminal_and_yes_skips_the_question(configured, account, sub, terminal, command):
    controller, term = terminal
    published = webhooks.publish(account, "conversation.ended", events.sample("conversation.ended"))
    assert deadletters.record(published.delivery_ids[0], "exhausted")
    target = (sub["id"],) if command[0] == "subscriptions" else ("--all",)
    still_there = (lambda: webhooks.subscriptions.get(account, sub["id"])) if command[0] == "subscriptions" \
        else (lambda: deadletters.list_dead(account))
    # When the command runs on a terminal and the operator answers no
    os.write(controller, b"n\n")
    refused = cli(configured, *command, "--account", account, *target, stdin=term)
    # Then it asked, stopped with exit 1, and nothing is gone
    assert refused.returncode == 1 and "for good?" in refused.stdout, (refused.stdout, refused.stderr)
    assert still_there()
    # When it runs on a terminal with --yes, Then it asks nothing and acts
    done = cli(configured, *command, "--account", account, *target, "--yes", stdin=term)
    assert done.returncode == 0 and "for good?" not in done.stdout, (done.stdout, done.stderr)
    if command[0] == "subscriptions":
        with pytest.raises(webhooks.NotFound):
            still_there()
    else:
        assert still_there() == []


def test_off_a_terminal_destructive_commands_act_without_asking_as_purge_always_did(configured, account, sub):
    result = cli(configured, "subscriptions", "delete", "--account", account, sub["id"])
    assert result.returncode == 0 and result.stdout == f"{sub['id']} deleted\n"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_a_since_that_is_not_a_finite_time_is_a_usage_error(configured, account, value):
    for command in (("dead-letters", "list"), ("dead-letters", "replay"), ("status",)):
        result = cli(configured, *command, "--account", account, "--since", value)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr == f"error: {value!r} is not a time (ISO-8601, unix seconds, or a duration ago like 2h)\n"


@pytest.mark.parametrize("where", ["mapping", "event-file"])
def test_dev_zero_is_read_only_up_to_the_payload_limit(configured, account, sub, where):
    # When /dev/zero is given as the mapping file or the event file, under a 1 GB address-space cap
    args = (("subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x", "--event", "message.sent",
             "--mapping", "@/dev/zero") if where == "mapping" else
            ("subscriptions", "preview", "--account", account, sub["id"], "--event-file", "/dev/zero"))
    started = time.monotonic()
    result = cli(configured, *args, memory_cap_bytes=1 << 30)
    # Then it stops at the limit, quickly, with one sentence and exit 2
    assert result.returncode == 2, result.stderr[-500:]
    assert result.stderr == f"error: --{where}: /dev/zero is larger than WEBHOOKS_MAX_PAYLOAD_BYTES (262144 bytes)\n"
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("where", ["mapping", "event-file"])
def test_json_nested_100000_deep_is_a_one_line_error(configured, account, sub, tmp_path, where):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    args = (("subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x", "--event", "message.sent",
             "--mapping", f"@{deep}") if where == "mapping" else
            ("subscriptions", "preview", "--account", account, sub["id"], "--event-file", str(deep)))
    result = cli(configured, *args)
    assert result.returncode == 2 and result.stderr == f"error: --{where}: JSON nested too deeply\n", result.stderr[-300:]


def test_preview_refuses_an_event_file_larger_than_publish_accepts(configured, account, sub, tmp_path):
    # Given a 400 KB conversation.ended (publish refuses it: the limit is 256 KB)
    data = events.sample("conversation.ended")
    data["transcript"] = data["transcript"] * 600
    (tmp_path / "big.json").write_text(json.dumps({"type": "conversation.ended", "data": data}))
    assert (tmp_path / "big.json").stat().st_size > 262_144
    with pytest.raises(webhooks.PayloadTooLarge):
        webhooks.publish(account, "conversation.ended", data)
    # When it is previewed, Then it is refused like publish refuses it, not shown as passing
    result = cli(configured, "subscriptions", "preview", "--account", account, sub["id"], "--event-file", str(tmp_path / "big.json"))
    assert result.returncode == 2 and "passes filter" not in result.stdout
    assert "larger than WEBHOOKS_MAX_PAYLOAD_BYTES" in result.stderr


def test_preview_refuses_an_envelope_over_the_limit_even_when_the_file_is_under_it(configured, account, sub, tmp_path):
    # Given a limit of 2,000 bytes and an event file just under it whose envelope (id, timestamp) is over it
    env = {**configured, "WEBHOOKS_MAX_PAYLOAD_BYTES": "2000"}
    data = {"conversation_id": "c1", "tags": ["t" * 90] * 20}
    text = json.dumps({"type": "conversation.ended", "data": data}, separators=(",", ":"))
    assert 1_850 < len(text) <= 2_000
    (tmp_path / "ev.json").write_text(text)
    result = cli(env, "subscriptions", "preview", "--account", account, sub["id"], "--event-file", str(tmp_path / "ev.json"))
    assert result.returncode == 2 and result.stderr.startswith("error: event is ") and "over the limit of 2000 bytes" in result.stderr


def test_preview_event_is_a_deprecated_alias_of_event_file(configured, account, sub, tmp_path):
    (tmp_path / "ev.json").write_text(json.dumps({"type": "conversation.ended", "data": events.sample("conversation.ended")}))
    result = cli(configured, "subscriptions", "preview", "--account", account, sub["id"], "--event", str(tmp_path / "ev.json"))
    assert result.returncode == 0 and result.stdout.startswith("passes filter: yes")
    assert result.stderr == "warning: --event is deprecated in preview; use --event-file FILE\n"
