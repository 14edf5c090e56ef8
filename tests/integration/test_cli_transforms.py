"""The CLI with transforms: create/update with --filter/--mapping/--template/--text/--header,
refusals at creation (exit 2, one error on stderr pointing at the fault), preview, send-test.
Real Redis; send-test goes over real TLS to the in-process receiver."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

import webhooks
from webhooks import events
from webhooks.transform import TransformError
from tests.support.worker import ROOT

pytestmark = pytest.mark.integration

SENTENCE = "Low-satisfaction chat ended: Visitor {data.visitor.name}, Topic: {data.topic}, Rating: {data.score} star"


def cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webhooks", *args], cwd=cwd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=90)


def create_json(env: dict[str, str], account: str, url: str, *options: str) -> dict[str, Any]:
    result = cli(env, "subscriptions", "create", "--account", account, "--url", url, "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_create_with_every_transform_option_stores_the_spec(configured, account, tmp_path):
    # Given a mapping in a file and options for a filter and two headers
    (tmp_path / "crm.json").write_text(json.dumps({"email": "data.visitor.email", "notes": "transcript_text(data.transcript)"}))
    # When the subscription is created from the CLI
    sub = create_json(configured, account, "https://127.0.0.1:9/crm", "--event", "conversation.ended",
                      "--filter", "contains(data.tags, 'vip')", "--mapping", f"@{tmp_path / 'crm.json'}",
                      "--header", "X-Source: chat-webhooks", "--header", "X-Team:support")
    # Then the stored transform is exactly what was given, and the secret is shown once
    assert sub["transform"] == {
        "filter": "contains(data.tags, 'vip')",
        "mapping": {"email": "data.visitor.email", "notes": "transcript_text(data.transcript)"},
        "headers": {"X-Source": "chat-webhooks", "X-Team": "support"},
    }
    assert webhooks.subscriptions.get(account, sub["id"]).transform == sub["transform"]
    assert sub["secret"].startswith("whsec_")


def test_create_with_a_template_and_update_that_replaces_it(configured, account):
    # Given a Slack subscription made with --template and --text
    sub = create_json(configured, account, "https://127.0.0.1:9/slack", "--event", "rating.submitted",
                      "--filter", "data.score <= `2`", "--template", "slack", "--text", SENTENCE)
    assert sub["transform"] == {"filter": "data.score <= `2`", "template": "slack", "text": SENTENCE}
    # When only the filter is updated
    result = cli(configured, "subscriptions", "update", "--account", account, sub["id"], "--filter", "data.score == `1`", "--json")
    # Then the template and text stay
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transform"] == {"filter": "data.score == `1`", "template": "slack", "text": SENTENCE}
    # When it is switched to a mapping with --clear-transform
    result = cli(configured, "subscriptions", "update", "--account", account, sub["id"], "--clear-transform",
                 "--mapping", '{"score": "data.score"}', "--json")
    # Then only the mapping is left
    assert result.returncode == 0, result.stderr
    assert webhooks.subscriptions.get(account, sub["id"]).transform == {"mapping": {"score": "data.score"}}


# (options, the part named, a fragment of the message)
HOSTILE: list[tuple[tuple[str, ...], str, str]] = [
    (("--filter", "data.score ]"), "filter", "Unexpected token: ] at column 11"),
    (("--filter", "eval(data)"), "filter", "unknown function eval()"),
    (("--filter", "contains(data.tags)"), "filter", "takes 2 argument(s), got 1"),
    (("--filter", "data.topic == '" + "x" * 2_000 + "'"), "filter", "over the limit of 1000"),
    (("--filter", "[" * 40 + "@" + "]" * 40), "filter", "nested more than 32 levels deep"),
    (("--filter", " | ".join(["[@, @][]"] * 40)), "filter", "nested more than 32 levels deep"),
    (("--mapping", '{"when": {"path": "data.ended_at", "exec": "rm -rf /"}}'), "mapping.when", "unknown key(s) 'exec'"),
    (("--mapping", '{"email": "data.visitor.email ||"}'), "mapping.email", "incomplete expression"),
    (("--template", "slack", "--text", "Rating: {data.score"), "text", "never closed"),
    (("--template", "slack"), "text", "is required when a template is set"),
    (("--template", "slack", "--text", "x", "--mapping", '{"a": "type"}'), "template", "cannot be combined"),
    (("--header", "X-A: ok\r\nX-Evil: 1"), "headers.X-A", "one line of printable ASCII"),
    (("--header", "webhook-signature: v1,forged"), "headers.webhook-signature", "cannot be overridden"),
    (("--header", "Authorization: Bearer abc"), "headers.Authorization", "secret-bearing"),
]


@pytest.mark.parametrize("options, part, fragment", HOSTILE, ids=[h[1] + ":" + h[2][:20] for h in HOSTILE])
def test_a_bad_or_hostile_transform_is_refused_at_creation_by_the_cli(configured, account, options, part, fragment):
    # When a subscription is created with it
    result = cli(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x",
                 "--event", "*", *options)
    # Then exit 2, nothing on stdout, one error on stderr naming the part, and nothing saved
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: {part}: ") and fragment in first, result.stderr
    assert "Traceback" not in result.stderr
    if rest:  # only a syntax error says more: the expression, and a caret under the fault
        assert len(rest) == 2 and rest[1].strip() == "^", result.stderr
    assert webhooks.subscriptions.list_subscriptions(account) == []


def test_the_caret_points_at_the_fault(configured, account):
    result = cli(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x",
                 "--event", "*", "--filter", "data.score <= `2` && data.topic = 'Billing'")
    assert result.returncode == 2
    _, expression, caret = result.stderr.splitlines()
    assert expression[caret.index("^"):].startswith("= 'Billing'")


@pytest.mark.parametrize("options, part, fragment", HOSTILE, ids=[h[1] + ":" + h[2][:20] for h in HOSTILE])
def test_a_bad_or_hostile_transform_is_refused_by_the_python_api(configured, account, options, part, fragment):
    # Given the same spec as a transform dict
    spec: dict[str, Any] = {}
    for flag, value in zip(options[::2], options[1::2]):
        name = flag.removeprefix("--")
        if name == "mapping":
            spec[name] = json.loads(value)
        elif name == "header":
            key, val = value.split(":", 1)
            spec.setdefault("headers", {})[key.strip()] = val.strip()
        else:
            spec[name] = value
    # When it is created, Then TransformError names the part and nothing is saved
    with pytest.raises(TransformError) as caught:
        webhooks.subscriptions.create(account, "https://127.0.0.1:9/x", ["*"], transform=spec)
    assert part in caught.value.errors
    assert fragment in str(caught.value)
    assert webhooks.subscriptions.list_subscriptions(account) == []


def test_an_update_with_a_bad_filter_is_refused_and_the_old_transform_kept(configured, account):
    # Given a subscription with a good filter
    sub = webhooks.subscriptions.create(account, "https://127.0.0.1:9/x", ["*"], transform={"filter": "data.score <= `2`"})
    # When the CLI updates it with a broken filter
    result = cli(configured, "subscriptions", "update", "--account", account, sub.id, "--filter", "data.score <=")
    # Then it is refused and the old filter is still there
    assert result.returncode == 2 and result.stderr.startswith("error: filter: incomplete expression")
    assert webhooks.subscriptions.get(account, sub.id).transform == {"filter": "data.score <= `2`"}


def test_a_filter_that_compiles_but_blows_up_is_stopped_in_the_producer_and_costs_no_task(configured, account):
    # Given a filter that would build 8**14 items if evaluated without a budget
    fan = "[@,@,@,@,@,@,@,@][]"
    webhooks.subscriptions.create(account, "https://127.0.0.1:9/x", ["*"],
                                  transform={"filter": "data | " + " | ".join([fan] * 14) + " | length(@) > `0`"})
    # When an event is published, Then it returns quickly with nothing enqueued
    started = time.monotonic()
    assert webhooks.publish(account, "message.sent", events.sample("message.sent")).deliveries == 0
    assert time.monotonic() - started < 5


# --- preview --------------------------------------------------------------------------------


@pytest.fixture
def slack_sub(configured: dict[str, str], account: str) -> webhooks.subscriptions.Subscription:
    return webhooks.subscriptions.create(account, "https://127.0.0.1:9/slack", ["rating.submitted"], transform={
        "filter": "data.score <= `2`", "template": "slack", "text": SENTENCE, "headers": {"X-Source": "chat-webhooks"}})


def test_preview_of_an_event_file_prints_pass_headers_and_the_exact_body(configured, account, slack_sub, tmp_path):
    # Given a low rating in a file
    event = {"type": "rating.submitted", "data": {"conversation_id": "c1", "score": 1, "topic": "Billing",
                                                  "visitor": {"name": "Jane <!channel> Smith"}}}
    (tmp_path / "low.json").write_text(json.dumps(event))
    # When it is previewed
    result = cli(configured, "subscriptions", "preview", "--account", account, slack_sub.id, "--event-file", str(tmp_path / "low.json"))
    # Then it passes, lists the headers and ends with the body, Slack-escaped, signed over those bytes
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "passes filter: yes" and lines[1] == "headers:" and lines[-2] == "body:"
    body = lines[-1].encode()
    assert body == b'{"text":"Low-satisfaction chat ended: Visitor Jane &lt;!channel&gt; Smith, Topic: Billing, Rating: 1 star"}'
    headers = {k.lower(): v for k, v in (line.strip().split(": ", 1) for line in lines[2:-2])}
    assert headers["x-source"] == "chat-webhooks" and headers["content-length"] == str(len(body))
    Webhook(slack_sub.signing_secrets()[0]).verify(body, headers)


def test_preview_json_of_a_sample_the_filter_refuses_says_why(configured, account, slack_sub):
    # When the 5-star sample is previewed as JSON
    result = cli(configured, "subscriptions", "preview", "--account", account, slack_sub.id, "--sample", "rating.submitted", "--json")
    # Then it does not pass, with the reason and no body
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"accepted": False, "reason": "the filter does not match this event", "body": None, "headers": {},
                                         "problems": []}
    # And in text, for a type the subscription does not take
    result = cli(configured, "subscriptions", "preview", "--account", account, slack_sub.id, "--sample", "message.sent")
    assert result.stdout == "passes filter: no (the subscription takes rating.submitted, not message.sent)\n"


@pytest.mark.parametrize("args, code, message", [
    ((), 2, "give exactly one of --event-file FILE or --sample TYPE"),
    (("--sample", "rating.submitted", "--event-file", "ev.json"), 2, "give exactly one of"),
    (("--event-file", "bad.json"), 2, "error: --event-file: not JSON"),
    (("--event-file", "nodata.json"), 2, "error: the event file must be a JSON object with 'type' and 'data'"),
    (("--event-file", "badscore.json"), 2, "error: invalid rating.submitted data: score"),
    (("--event-file", "missing.json"), 2, "error: --event-file: cannot read missing.json"),
    (("--sample", "no.such"), 2, "error: unknown event type"),
])
def test_preview_refuses_bad_input_with_exit_2_and_one_error(configured, account, slack_sub, tmp_path, args, code, message):
    # Given event files of every kind
    (tmp_path / "ev.json").write_text(json.dumps({"type": "rating.submitted", "data": events.sample("rating.submitted")}))
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "nodata.json").write_text('{"type": "rating.submitted"}')
    (tmp_path / "badscore.json").write_text('{"type": "rating.submitted", "data": {"conversation_id": "c", "score": 9}}')
    # When previewing with them, Then exit 2 and the error on stderr, no traceback
    result = cli(configured, "subscriptions", "preview", "--account", account, slack_sub.id, *args, cwd=tmp_path)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_preview_of_an_unknown_subscription_is_exit_1(configured, account):
    result = cli(configured, "subscriptions", "preview", "--account", account, "sub_nope", "--sample", "message.sent")
    assert result.returncode == 1 and result.stderr.startswith("error: no subscription sub_nope")


# --- send-test ------------------------------------------------------------------------------


def test_send_test_delivers_the_mapped_body_with_the_extra_header(configured, account, receiver):
    # Given a Slack-template subscription with an extra header, created from the CLI
    sub = create_json(configured, account, receiver.url("/slack"), "--event", "rating.submitted",
                      "--filter", "data.score <= `2`", "--template", "slack", "--text", "Test: {data.message}",
                      "--header", "X-Source: chat-webhooks")
    # When send-test runs (the filter does not apply to a test)
    result = cli(configured, "send-test", "--account", account, sub["id"], "--json")
    # Then one Slack message arrives, signed over its bytes, with the header
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["ok"] is True and outcome["status"] == 200
    (request,) = receiver.requests_for("/slack")
    assert Webhook(sub["secret"]).verify(request.body, request.headers) == {"text": f"Test: Test delivery to {sub['id']}"}
    assert request.headers["x-source"] == "chat-webhooks"
    assert request.headers["webhook-id"] == outcome["delivery_id"]


# --- paths checked against the event catalogue (issue 13 item 2) ----------------------------


def test_a_filter_on_a_field_the_subscribed_type_lacks_is_refused_with_a_suggestion(configured, account):
    # When a subscription to conversation.ended is created with a misspelt field in its filter
    result = cli(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x",
                 "--event", "conversation.ended", "--filter", "data.visitor.emial == 'jane@example.com'")
    # Then exit 2, one sentence naming the path and the real one, and nothing stored
    assert result.returncode == 2
    assert result.stderr == ("error: filter: `data.visitor.emial` cannot exist in conversation.ended events; "
                             "did you mean `data.visitor.email`?\n")
    assert webhooks.subscriptions.list_subscriptions(account) == []
    # And the same filter on a custom event type is free-form
    assert cli(configured, "subscriptions", "create", "--account", account, "--url", "https://127.0.0.1:9/x",
               "--event", "custom.lead", "--filter", "data.visitor.emial == 'x'").returncode == 0


def test_preview_warns_about_a_path_the_previewed_event_cannot_have(configured, account):
    # Given a subscription to every event whose filter reads a misspelt field
    sub = webhooks.subscriptions.create(account, "https://127.0.0.1:9/x", ["*"], transform={"filter": "data.scor <= `2`"})
    # When a rating is previewed
    result = cli(configured, "subscriptions", "preview", "--account", account, sub.id, "--sample", "rating.submitted")
    # Then the problem is named on stderr with the suggestion, and the event does not pass
    assert result.returncode == 0
    assert result.stderr == ("warning: filter: `data.scor` cannot exist in rating.submitted events; "
                             "did you mean `data.score`?\n")
    assert result.stdout.startswith("passes filter: no")
