"""Issue 5 end to end: the four integrations of docs/transforms.md's "Send each system what it needs", created with exactly the
commands the guide shows (receiver URL and account substituted), delivered by a real worker over
real TLS, each body verified with the ``standardwebhooks`` package over the bytes received."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from standardwebhooks.webhooks import Webhook

import webhooks
from webhooks import deadletters, events, producer, records
from webhooks.connection import get_redis
from webhooks.keys import K
from tests.support.receiver import Recorded
from tests.support.worker import ROOT, wait_until

pytestmark = pytest.mark.integration

GUIDE = ROOT / "docs" / "transforms.md"
SLACK_SENTENCE = b'{"text":"Low-satisfaction chat ended: Visitor Jane Smith, Topic: Billing, Rating: 1 star"}'
# What the HTTP layer adds on its own and a preview does not claim to know.
TRANSPORT_ONLY = {"host", "accept-encoding"}
PER_REQUEST = {"webhook-id", "webhook-timestamp", "webhook-signature"}


# --- the guide ------------------------------------------------------------------------------


def guide_blocks(lang: str) -> list[str]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## Send each system what it needs"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.DOTALL)


def guide_command(marker: str) -> str:
    """The one shell block (or line of the preview block) of the guide holding ``marker``."""
    hits = [b for b in guide_blocks("sh") if marker in b]
    if len(hits) == 1 and "\\\n" in hits[0]:
        return hits[0]
    lines = [line for b in hits for line in b.splitlines() if marker in line]
    assert len(lines) == 1, f"the guide should show exactly one command with {marker!r}, found {hits}"
    return lines[0]


def run_guide(env: dict[str, str], command: str, *, account: str, url: str | None = None, sub_id: str | None = None,
              cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command of the guide in bash, as written, with ``webhooks`` being this checkout's CLI."""
    assert "--account acme" in command
    text = command.replace("--account acme", f"--account {account}")
    if url is not None:
        assert len(re.findall(r"https://\S+", text)) == 1
        text = re.sub(r"https://\S+", url, text)
    if sub_id is not None:
        text = text.replace("SUBSCRIPTION_ID", sub_id)
    script = f'webhooks() {{ "{sys.executable}" -m webhooks "$@"; }}\n{text}'
    return subprocess.run(["bash", "-c", script], cwd=cwd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=90)


def created(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """(subscription id, secret) from what ``subscriptions create`` printed."""
    assert result.returncode == 0, result.stderr
    fields = dict(re.findall(r"^(\w+):\s+(\S+)", result.stdout, flags=re.MULTILINE))
    assert fields["id"].startswith("sub_") and fields["secret"].startswith("whsec_"), result.stdout
    return fields["id"], fields["secret"]


def create_from_guide(env: dict[str, str], marker: str, account: str, url: str) -> tuple[str, str]:
    return created(run_guide(env, guide_command(marker), account=account, url=url))


def verified(secret: str, request: Recorded) -> Any:
    """The payload, verified over exactly the bytes received (raises if it does not verify)."""
    return Webhook(secret).verify(request.body, request.headers)


def parse_preview(stdout: str) -> tuple[bool, dict[str, str], bytes]:
    """(passes, headers, body bytes) from the text ``subscriptions preview`` prints."""
    head, _, body = stdout.partition("\nbody:\n")
    lines = head.splitlines()
    passes = lines[0] == "passes filter: yes"
    headers = dict(line.strip().split(": ", 1) for line in lines[2:]) if passes else {}
    return passes, headers, body.removesuffix("\n").encode("utf-8")


# --- events ---------------------------------------------------------------------------------


def jane_conversation(tags: list[str], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "conversation_id": "conv_jane1",
        "transcript": [
            {"author": "Jane Smith", "role": "visitor", "text": "My invoice shows the wrong plan.", "sent_at": "2024-05-02T01:10:00Z"},
            {"author": "Sam Lee", "role": "agent", "text": "Fixed, you will get a corrected invoice today.", "sent_at": "2024-05-02T01:25:00Z"},
        ],
        "duration_s": 1200,
        "tags": tags,
        "agent": {"id": "agt_7", "name": "Sam Lee", "email": "sam@support.example.com"},
        "visitor": {"id": "vis_9", "name": "Jane Smith", "email": "jane.smith@example.com"},
        "ended_at": "2024-05-02T01:30:00Z",  # 1 May, 21:30 in New York
    }
    data.update(changes)
    return data


def jane_rating(score: int) -> dict[str, Any]:
    return {"conversation_id": "conv_jane1", "score": score, "topic": "Billing",
            "visitor": {"id": "vis_9", "name": "Jane Smith", "email": "jane.smith@example.com"}}


# --- the four examples ----------------------------------------------------------------------


def test_chat_to_crm_gets_the_mapped_contact_exactly_as_the_guide_shows(configured, worker, receiver, account):
    # Given the guide's CRM subscription
    sub_id, secret = create_from_guide(configured, "crm.example.com", account, receiver.url("/crm"))
    # When Jane's conversation ends (and a rating, which the CRM does not take, is published)
    published = webhooks.publish(account, "conversation.ended", jane_conversation(["billing"]))
    assert webhooks.publish(account, "rating.submitted", jane_rating(4)).deliveries == 0
    # Then the CRM gets one signed contact: email, transcript as notes, agent as owner, New York date
    receiver.wait_for(lambda r: len(r.requests_for("/crm")) == 1, timeout_s=60)
    request = receiver.requests_for("/crm")[0]
    contact = verified(secret, request)
    assert contact == {
        "email": "jane.smith@example.com",
        "name": "Jane Smith",
        "notes": "Jane Smith: My invoice shows the wrong plan.\nSam Lee: Fixed, you will get a corrected invoice today.",
        "assigned_to": "Sam Lee",
        "last_contacted": "2024-05-01",
        "source": "live chat",
    }
    # And the bytes are those the guide prints, with the static header and our signature headers
    shown = next(b for b in guide_blocks("json") if '"assigned_to"' in b)
    assert request.body == shown.strip().encode("utf-8")
    assert request.headers["x-crm-source"] == "chat-webhooks"
    assert request.headers["webhook-id"] == published.delivery_ids[0]
    wait_until(lambda: records.load(published.delivery_ids[0])["status"] == "delivered", 60, message="CRM delivery recorded")
    assert len(receiver.requests_for("/crm")) == 1


def test_chat_to_helpdesk_gets_only_conversations_tagged_needs_follow_up_with_the_transcript(configured, worker, receiver, account):
    # Given the guide's helpdesk subscription
    _, secret = create_from_guide(configured, "helpdesk.example.com", account, receiver.url("/helpdesk"))
    # When an untagged, an empty-tagged and a tagged conversation end
    assert webhooks.publish(account, "conversation.ended", jane_conversation(["billing"])).deliveries == 0
    assert webhooks.publish(account, "conversation.ended", jane_conversation([])).deliveries == 0
    tagged = jane_conversation(["billing", "needs follow-up"])
    assert webhooks.publish(account, "conversation.ended", tagged).deliveries == 1
    # Then one ticket arrives, signed, with the transcript as text and attached as it is
    receiver.wait_for(lambda r: len(r.requests_for("/helpdesk")) == 1, timeout_s=60)
    ticket = verified(secret, receiver.requests_for("/helpdesk")[0])
    assert ticket == {
        "subject": "Follow up: chat with Jane Smith",
        "requester": {"name": "Jane Smith", "email": "jane.smith@example.com"},
        "description": "Jane Smith: My invoice shows the wrong plan.\nSam Lee: Fixed, you will get a corrected invoice today.",
        "transcript": tagged["transcript"],
    }


def test_chat_to_analytics_gets_every_event_unmapped(configured, worker, receiver, account):
    # Given the guide's analytics subscription (every event, no transform)
    sub_id, secret = create_from_guide(configured, "analytics.example.com", account, receiver.url("/analytics"))
    assert webhooks.subscriptions.get(account, sub_id).transform is None
    # When five different events are published
    sent = {
        "conversation.started": events.sample("conversation.started"),
        "message.sent": events.sample("message.sent"),
        "rating.submitted": jane_rating(1),
        "conversation.ended": jane_conversation(["needs follow-up"]),
        "custom.order_paid": {"order_id": "ord_7", "total": 49.9},
    }
    ids = {webhooks.publish(account, t, d).id: (t, d) for t, d in sent.items()}
    # Then each arrives once as the Standard Webhooks envelope, in its canonical bytes, signed
    receiver.wait_for(lambda r: len(r.requests_for("/analytics")) == 5, timeout_s=60)
    for request in receiver.requests_for("/analytics"):
        envelope = verified(secret, request)
        assert set(envelope) == {"id", "type", "timestamp", "data"}
        assert (envelope["type"], envelope["data"]) == ids.pop(envelope["id"])
        assert request.body == events.serialize(envelope)
    assert ids == {}


def test_chat_to_slack_sends_the_sentence_for_ratings_of_two_or_less_only(configured, worker, receiver, account):
    # Given the guide's Slack subscription
    _, secret = create_from_guide(configured, "hooks.slack.com", account, receiver.url("/slack"))
    # When ratings of 3, 4, 5 and then 1 are published
    assert [webhooks.publish(account, "rating.submitted", jane_rating(s)).deliveries for s in (3, 4, 5)] == [0, 0, 0]
    assert webhooks.publish(account, "rating.submitted", jane_rating(1)).deliveries == 1
    # Then Slack gets exactly the sentence of the issue, signed over those bytes
    receiver.wait_for(lambda r: len(r.requests_for("/slack")) == 1, timeout_s=60)
    request = receiver.requests_for("/slack")[0]
    assert request.body == SLACK_SENTENCE
    assert verified(secret, request) == {"text": "Low-satisfaction chat ended: Visitor Jane Smith, Topic: Billing, Rating: 1 star"}
    assert request.headers["content-type"] == "application/json"


# --- a filtered-out event costs no task -----------------------------------------------------


class PublishSpy:
    """Wraps the state machine's publish and records the subscriptions each call enqueued for."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.calls: list[list[str]] = []

    def __call__(self, store: Any, account: str, event_id: str, event_type: str, body: bytes, ttl_s: int,
                 deliveries: list[tuple[str, str]], token: str, subs_version: str) -> Any:
        # recorded: the calls that enqueue (not a first call that only fetches the account's
        # subscriptions, nor one that found them changed and is made again)
        result = self.real(store, account, event_id, event_type, body, ttl_s, deliveries, token, subs_version)
        if isinstance(result, int) and deliveries:
            self.calls.append([sub_id for _, sub_id in deliveries])
        return result

    def subscriptions_enqueued(self) -> list[str]:
        return [sub for call in self.calls for sub in call]


def test_a_filtered_out_event_costs_no_task(configured, worker, receiver, account, monkeypatch):
    # Given an account with the Slack subscription (low ratings) and an unfiltered analytics one
    slack = webhooks.subscriptions.create(account, receiver.url("/slack"), ["rating.submitted"], transform={
        "filter": "data.score <= `2`", "template": "slack", "text": "Rating: {data.score}"})
    analytics = webhooks.subscriptions.create(account, receiver.url("/analytics"), ["*"])
    from webhooks.state import DeliveryStore

    spy = PublishSpy(DeliveryStore.publish)
    monkeypatch.setattr(DeliveryStore, "publish", lambda store, *a, **k: spy(store, *a, **k))
    # When a 5-star rating is published
    published = webhooks.publish(account, "rating.submitted", jane_rating(5))
    # Then one delivery is enqueued, for analytics only: no record, no task message for Slack
    assert published.deliveries == 1
    assert spy.subscriptions_enqueued() == [analytics.id]
    assert [records.load(d)["sub"] for d in published.delivery_ids] == [analytics.id]
    receiver.wait_for(lambda r: len(r.requests_for("/analytics")) == 1, timeout_s=60)
    assert receiver.requests_for("/slack") == []
    # And with the Slack subscription alone, the event is not even stored and nothing is pushed
    alone = f"{account}-slack"
    webhooks.subscriptions.create(alone, receiver.url("/slack-alone"), ["rating.submitted"], transform=slack.transform)
    calls_before = len(spy.calls)
    skipped = webhooks.publish(alone, "rating.submitted", jane_rating(5))
    assert (skipped.deliveries, skipped.delivery_ids) == (0, ())
    assert len(spy.calls) == calls_before
    assert get_redis().exists(K.event(account, skipped.id)) == 0
    assert get_redis().zcard(K.deliveries(alone)) == 0


# --- preview, send-test ---------------------------------------------------------------------


def test_preview_prints_exactly_what_the_endpoint_then_receives(configured, worker, receiver, account, tmp_path):
    # Given the guide's Slack subscription and a low rating in a file
    sub_id, secret = create_from_guide(configured, "hooks.slack.com", account, receiver.url("/slack"))
    rating = jane_rating(1)
    (tmp_path / "low-rating.json").write_text(json.dumps({"type": "rating.submitted", "data": rating}), encoding="utf-8")
    # When the guide's preview command runs on it
    result = run_guide(configured, guide_command("--event-file low-rating.json"), account=account, sub_id=sub_id, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    passes, shown_headers, shown_body = parse_preview(result.stdout)
    # Then it passes with the sentence, the body the guide's sample output shows, and nothing was sent
    assert passes and shown_body == SLACK_SENTENCE
    assert shown_body.decode() in next(b for b in guide_blocks("text") if "passes filter: yes" in b)
    assert receiver.requests_for("/slack") == []
    # When the same event is published
    webhooks.publish(account, "rating.submitted", rating)
    receiver.wait_for(lambda r: len(r.requests_for("/slack")) == 1, timeout_s=60)
    got = receiver.requests_for("/slack")[0]
    # Then the receiver got the previewed bytes and headers (timestamp, id and signature aside)
    assert got.body == shown_body
    verified(secret, got)
    shown = {k.lower(): v for k, v in shown_headers.items()}
    assert {k: v for k, v in shown.items() if k not in PER_REQUEST} == \
        {k: v for k, v in got.headers.items() if k not in PER_REQUEST | TRANSPORT_ONLY}
    assert PER_REQUEST <= set(shown)


def test_preview_of_a_sample_and_send_test_go_through_the_crm_mapping(configured, worker, receiver, account):
    # Given the guide's CRM subscription
    sub_id, secret = create_from_guide(configured, "crm.example.com", account, receiver.url("/crm"))
    # When the guide's sample preview runs
    result = run_guide(configured, guide_command("--sample conversation.ended"), account=account, sub_id=sub_id)
    assert result.returncode == 0, result.stderr
    passes, shown_headers, shown_body = parse_preview(result.stdout)
    # Then it shows the sample mapped to a contact, with the static header
    sample = events.sample("conversation.ended")
    assert passes and json.loads(shown_body)["email"] == sample["visitor"]["email"]
    assert json.loads(shown_body)["assigned_to"] == sample["agent"]["name"]
    assert shown_headers["X-Crm-Source"] == "chat-webhooks"
    # And publishing the sample delivers exactly the previewed bytes
    webhooks.publish(account, "conversation.ended", sample)
    receiver.wait_for(lambda r: len(r.requests_for("/crm")) == 1, timeout_s=60)
    assert receiver.requests_for("/crm")[0].body == shown_body
    # When the guide's send-test runs
    result = run_guide(configured, guide_command("send-test"), account=account, sub_id=sub_id)
    # Then one mapped webhook.test is delivered at once: the constant kept, event fields null
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("delivered: HTTP 200")
    receiver.wait_for(lambda r: len(r.requests_for("/crm")) == 2, timeout_s=60)
    test_request = receiver.requests_for("/crm")[1]
    assert verified(secret, test_request) == {"email": None, "name": None, "notes": None, "assigned_to": None,
                                              "last_contacted": None, "source": "live chat"}
    assert test_request.headers["x-crm-source"] == "chat-webhooks"


# --- awkward data, end to end ---------------------------------------------------------------


CRM = {"mapping": {
    "email": "data.visitor.email",
    "name": "data.visitor.name",
    "notes": {"join": "\n", "path": "data.transcript", "item": "{author}: {text}"},
    "assigned_to": "data.agent.name",
    "last_contacted": {"path": "data.ended_at", "format_date": "%Y-%m-%d", "tz": "America/New_York"},
}}


def test_a_50kb_unicode_transcript_is_mapped_and_signed_over_the_utf8_bytes(configured, worker, receiver, account):
    # Given a CRM mapping, and a conversation of 50 KB of emoji, right-to-left and CJK text
    sub = webhooks.subscriptions.create(account, receiver.url("/crm"), ["conversation.ended"], transform=CRM)
    line = "Zoë 👋🏽 שלום 你好 — “quotes” \\ back\\slash "
    transcript = [{"author": "Zoë Ångström", "role": "visitor" if i % 2 else "agent", "text": f"{i} {line * 4}",
                   "sent_at": "2024-05-02T01:10:00Z"} for i in range(300)]
    data = jane_conversation([], transcript=transcript, visitor={"name": "Zoë Ångström", "email": "zoe@example.com"})
    # When it is published
    webhooks.publish(account, "conversation.ended", data)
    # Then the contact arrives with every character intact, as UTF-8 (not \u escapes), and verifies
    receiver.wait_for(lambda r: len(r.requests_for("/crm")) == 1, timeout_s=60)
    request = receiver.requests_for("/crm")[0]
    contact = verified(sub.signing_secrets()[0], request)
    assert len(request.body) > 50_000
    assert contact["name"] == "Zoë Ångström"
    assert contact["notes"] == "\n".join(f"Zoë Ångström: {m['text']}" for m in transcript)
    assert "👋🏽 שלום 你好".encode("utf-8") in request.body


def test_missing_fields_map_to_null_and_a_filter_on_them_does_not_match(configured, worker, receiver, account):
    # Given a CRM mapping and a helpdesk filter on tags
    crm = webhooks.subscriptions.create(account, receiver.url("/crm"), ["conversation.ended"], transform=CRM)
    webhooks.subscriptions.create(account, receiver.url("/helpdesk"), ["conversation.ended"],
                                  transform={"filter": "contains(data.tags, 'needs follow-up')"})
    # When a conversation with nothing but its id ends
    published = webhooks.publish(account, "conversation.ended", {"conversation_id": "conv_bare"})
    # Then only the CRM gets it, every mapped field null; the helpdesk filter fails closed
    assert published.deliveries == 1
    receiver.wait_for(lambda r: len(r.requests_for("/crm")) == 1, timeout_s=60)
    assert verified(crm.signing_secrets()[0], receiver.requests_for("/crm")[0]) == dict.fromkeys(CRM["mapping"])
    assert receiver.requests_for("/helpdesk") == []


def test_wrong_types_do_not_match_a_filter_and_a_mapping_failing_on_them_is_dead_lettered_unsent(configured, worker, receiver, account):
    # Given, on custom events (any JSON), a filter on a number and a mapping formatting a date
    webhooks.subscriptions.create(account, receiver.url("/low"), ["custom.survey"], transform={"filter": "data.score <= `2`"})
    dated = webhooks.subscriptions.create(account, receiver.url("/dated"), ["custom.survey"], transform={
        "mapping": {"day": {"path": "data.answered_at", "format_date": "%Y-%m-%d"}}})
    # When the score comes as text and the date is not a date
    published = webhooks.publish(account, "custom.survey", {"score": "1", "answered_at": "yesterday"})
    # Then the filter does not match (text is not compared with a number)
    assert published.deliveries == 1
    assert records.load(published.delivery_ids[0])["sub"] == dated.id
    # And the mapping's failure dead-letters the delivery at once, naming the field, with no request sent
    wait_until(lambda: len(deadletters.list_dead(account)) == 1, 60, message="one dead letter")
    dead = deadletters.list_dead(account)[0]
    assert dead["reason"] == "transform"
    assert "mapping.day" in records.load(published.delivery_ids[0])["last_error"]
    assert receiver.requests_for("/dated") == [] and receiver.requests_for("/low") == []
