"""webhooks.contrib.django in a real Django project (tests/django_project, SQLite in a file, real
commits), a real Redis, a real worker and a real HTTPS receiver: settings from ``WEBHOOKS``,
publish on commit (once), nothing on rollback, and ``manage.py webhooks`` /
``manage.py replay_dead_letters`` as a developer runs them.

Django is configured in this process with ``settings.configure`` (never DJANGO_SETTINGS_MODULE
in our environment: it would reach the worker processes and switch on Celery's Django fixup);
the management commands run in subprocesses that alone get DJANGO_SETTINGS_MODULE."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

django = pytest.importorskip("django", reason="Django is not installed; it is in the test extra: pip install -e '.[test]'")

import webhooks  # noqa: E402
from webhooks import deadletters, records  # noqa: E402
from webhooks.connection import get_redis  # noqa: E402
from webhooks.errors import ConfigurationError, PublishError, ValidationError  # noqa: E402
from webhooks.keys import K  # noqa: E402
from webhooks.settings import get_settings, reload_settings  # noqa: E402
from tests.support.receiver import Reply  # noqa: E402
from tests.support.worker import ROOT, wait_until  # noqa: E402

pytestmark = pytest.mark.integration

MANAGE = ROOT / "tests" / "django_project" / "manage.py"


@pytest.fixture(scope="module")
def producer_env(own_env: dict[str, str]) -> dict[str, str]:
    """This module's own redis-server: the deliveries its tests leave (to closed ports, or
    queued as retries when the worker stops) never reach another module's database."""
    return own_env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, own_env: dict[str, str]) -> Iterator[Path]:
    """The test project configured in this process, its SQLite database migrated (a file: real commits)."""
    from django.conf import settings
    from django.core.management import call_command

    import tests.django_project.settings as project_settings
    from webhooks.contrib.django import conf

    if settings.configured:
        pytest.skip("Django was configured by something else in this session")
    db = tmp_path_factory.mktemp("django") / "db.sqlite3"
    values = {k: getattr(project_settings, k) for k in dir(project_settings) if k.isupper()}
    values["DATABASES"] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(db)}}
    values["WEBHOOKS"] = {"REDIS_URL": own_env["WEBHOOKS_REDIS_URL"], "PUBLISH_TIMEOUT_S": 2}
    settings.configure(**values)
    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    yield db
    conf.uninstall()
    assert "DJANGO_SETTINGS_MODULE" not in os.environ


@pytest.fixture
def dj(project: Path, configured: dict[str, str]) -> Iterator[dict[str, str]]:
    """Django's settings are the source of chat-webhooks settings for this test."""
    from webhooks.contrib.django import conf

    conf.install()
    yield configured
    conf.uninstall()


def deliveries(account: str) -> int:
    return int(get_redis().zcard(K.deliveries(account)))


# --- settings from settings.WEBHOOKS ------------------------------------------------------------


def test_settings_come_from_django_WEBHOOKS_with_the_same_defaults_and_validation(dj, monkeypatch):
    from django.test import override_settings

    for name in [n for n in os.environ if n.startswith("WEBHOOKS_")]:
        monkeypatch.delenv(name)  # Django's settings alone
    # Given WEBHOOKS with short names, a number, a boolean and a list
    with override_settings(WEBHOOKS={"REDIS_URL": "redis://10.1.2.3:6379/5", "MAX_PAYLOAD_BYTES": 1000,
                                     "ALLOW_HTTP": True, "ALLOW_NETWORKS": ["10.0.0.0/8", "127.0.0.0/8"]}):
        s = reload_settings()
        # Then they are the settings, and what WEBHOOKS leaves out keeps its default
        assert (s.redis_url, s.max_payload_bytes, s.allow_http) == ("redis://10.1.2.3:6379/5", 1000, True)
        assert [str(n) for n in s.allow_networks] == ["10.0.0.0/8", "127.0.0.0/8"]
        assert s.max_response_bytes == 65536
    # And a bad value is refused by the same validation, naming the setting
    with override_settings(WEBHOOKS={"MAX_PAYLOAD_BYTES": "lots"}):
        with pytest.raises(ConfigurationError, match="WEBHOOKS_MAX_PAYLOAD_BYTES='lots' is not valid"):
            reload_settings()
    with override_settings(WEBHOOKS={"CONNECT_TIMEOUT_S": 30, "TOTAL_TIMEOUT_S": 10}):
        with pytest.raises(ConfigurationError, match="WEBHOOKS_CONNECT_TIMEOUT_S must not exceed"):
            reload_settings()
    # And an unknown name gets a suggestion
    with override_settings(WEBHOOKS={"MAX_PAYLOAD_BYTE": 1}):
        with pytest.raises(ConfigurationError, match=r"settings.WEBHOOKS\['MAX_PAYLOAD_BYTE'\] is not a chat-webhooks "
                                                     r"setting; did you mean 'MAX_PAYLOAD_BYTES'\?"):
            reload_settings()


def test_one_value_per_setting_a_different_value_in_the_environment_is_refused(dj, monkeypatch):
    from django.core.checks import run_checks
    from django.test import override_settings

    monkeypatch.setenv("WEBHOOKS_MAX_PAYLOAD_BYTES", "5000")
    with override_settings(WEBHOOKS={**dj_settings(), "MAX_PAYLOAD_BYTES": 6000}):
        with pytest.raises(ConfigurationError, match="WEBHOOKS_MAX_PAYLOAD_BYTES is set both in the environment and in "
                                                     r"settings.WEBHOOKS\['MAX_PAYLOAD_BYTES'\], with different values"):
            reload_settings()
        # And `manage.py check` reports it before any request does
        (error,) = [e for e in run_checks() if e.id == "chat_webhooks.E001"]
        assert "set it in one place" in error.msg
    # The same value in both places is one value
    with override_settings(WEBHOOKS={**dj_settings(), "MAX_PAYLOAD_BYTES": 5000}):
        assert reload_settings().max_payload_bytes == 5000


def dj_settings() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.WEBHOOKS)


# --- publish_on_commit ----------------------------------------------------------------------------


@pytest.fixture
def conversation(dj: dict[str, str]) -> Any:
    from tests.django_project.chat.models import Conversation

    return Conversation.objects.create(visitor_email="jane@example.com")


def test_commit_publishes_once_and_a_retried_request_does_not_send_again(dj, account, conversation):
    from django.db import transaction

    from tests.django_project.chat.services import end_conversation

    webhooks.subscriptions.create(account, "https://127.0.0.1:9/crm", ["conversation.ended"])
    # When the event is published inside a transaction, Then nothing is enqueued before the commit
    with transaction.atomic():
        from webhooks.contrib.django import publish_on_commit

        publish_on_commit(account, "conversation.ended", {"conversation_id": "c-early"}, event_id="c-early-ended")
        assert deliveries(account) == 0 and not get_redis().exists(K.event(account, "c-early-ended"))
    # And once it commits, one delivery
    assert deliveries(account) == 1
    # When the view ends a conversation (it publishes on commit with an id derived from the row)
    event_id = end_conversation(account, conversation.pk)
    # Then one more delivery, for that event id
    assert event_id == f"conversation-{conversation.pk}-ended" and deliveries(account) == 2
    ids = [i.decode() for i in get_redis().zrange(K.deliveries(account), 0, -1)]
    assert sorted(records.load(i)["evt"] for i in ids) == sorted(["c-early-ended", event_id])
    # When the request is retried (the client timed out) and the view runs again
    assert end_conversation(account, conversation.pk) == event_id
    # Then nothing more is enqueued
    assert deliveries(account) == 2


def test_rollback_publishes_nothing_also_for_a_rolled_back_savepoint(dj, account, conversation):
    from django.db import transaction

    from tests.django_project.chat.models import Conversation
    from webhooks.contrib.django import publish_on_commit

    webhooks.subscriptions.create(account, "https://127.0.0.1:9/crm", ["conversation.ended"])
    # When the transaction rolls back after publish_on_commit
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Conversation.objects.filter(pk=conversation.pk).update(ended=True)
            publish_on_commit(account, "conversation.ended", {"conversation_id": "rolled"}, event_id="rolled-back")
            raise RuntimeError("the view failed")
    # Then nothing was published and the row is unchanged
    assert deliveries(account) == 0 and not Conversation.objects.get(pk=conversation.pk).ended
    # When only an inner savepoint rolls back
    with transaction.atomic():
        publish_on_commit(account, "conversation.ended", {"conversation_id": "outer"}, event_id="outer-kept")
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                publish_on_commit(account, "conversation.ended", {"conversation_id": "inner"}, event_id="inner-dropped")
                raise RuntimeError("inner step failed")
    # Then the outer event is published and the inner one is not
    (did,) = [i.decode() for i in get_redis().zrange(K.deliveries(account), 0, -1)]
    assert records.load(did)["evt"] == "outer-kept"


def test_a_bad_event_is_refused_in_the_request_not_after_the_commit(dj, account, conversation):
    from django.db import transaction

    from tests.django_project.chat.models import Conversation
    from webhooks.contrib.django import publish_on_commit

    with pytest.raises(ValidationError, match="score"):
        with transaction.atomic():
            Conversation.objects.filter(pk=conversation.pk).update(ended=True)
            publish_on_commit(account, "rating.submitted", {"conversation_id": "c", "score": 9}, event_id="bad-rating")
    assert not Conversation.objects.get(pk=conversation.pk).ended


def test_with_redis_down_at_commit_the_row_is_committed_and_the_error_surfaces_or_is_logged(dj, account, conversation,
                                                                                             monkeypatch, caplog):
    from django.db import transaction
    from django.test import override_settings

    from tests.django_project.chat.models import Conversation
    from webhooks.contrib.django import publish_on_commit

    monkeypatch.delenv("WEBHOOKS_REDIS_URL")
    monkeypatch.delenv("WEBHOOKS_PUBLISH_TIMEOUT_S")
    with override_settings(WEBHOOKS={"REDIS_URL": "redis://127.0.0.1:1/0", "PUBLISH_TIMEOUT_S": 1}):
        reload_settings()
        # robust=False (Django's default): PublishError after the commit, naming the event id
        with pytest.raises(PublishError, match="down-1"):
            with transaction.atomic():
                Conversation.objects.filter(pk=conversation.pk).update(ended=True)
                publish_on_commit(account, "conversation.ended", {"conversation_id": "c"}, event_id="down-1")
        assert Conversation.objects.get(pk=conversation.pk).ended
        # robust=True: logged with the event id, the request goes on
        with caplog.at_level(logging.ERROR):
            with transaction.atomic():
                publish_on_commit(account, "conversation.ended", {"conversation_id": "c"}, event_id="down-2", robust=True)
        assert "down-2" in caplog.text
    reload_settings()


# --- management commands: a real Redis, a real worker, a real receiver -----------------------------


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python tests/django_project/manage.py ARGS`` with the Redis URL given only through Django's settings."""
    base = {k: v for k, v in os.environ.items() if k != "WEBHOOKS_REDIS_URL" and k != "DJANGO_SETTINGS_MODULE"}
    run_env = {**base, **{k: v for k, v in env.items() if k != "WEBHOOKS_REDIS_URL"},
               "DJANGO_TEST_WEBHOOKS_REDIS_URL": env["WEBHOOKS_REDIS_URL"], "DJANGO_TEST_DB": os.devnull,
               "DJANGO_SETTINGS_MODULE": "tests.django_project.settings", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(MANAGE), *args], cwd=ROOT, env=run_env, capture_output=True, text=True,
                          timeout=90)


def test_manage_py_webhooks_and_replay_dead_letters_against_a_real_worker(configured, own_worker, receiver, account):
    # Given a subscription created with `manage.py webhooks` to an endpoint that is down
    made = manage(configured, "webhooks", "subscriptions", "create", "--account", account, "--url", receiver.url("/crm"),
                  "--event", "conversation.ended", "--retry-schedule", "0.2,0.2", "--json")
    assert made.returncode == 0, made.stderr
    sub = json.loads(made.stdout)
    assert sub["enabled"] is True and sub["created_at"].endswith("Z")
    receiver.set_default(Reply(status=500, body=b"down"))
    # When an event is published and every attempt fails
    published = webhooks.publish(account, "conversation.ended", {"conversation_id": "c-42"})
    (did,) = published.delivery_ids
    wait_until(lambda: len(deadletters.list_dead(account)) == 1, 60, message="a dead letter")
    # Then `manage.py webhooks dead-letters list --json` shows it, typed
    listed = manage(configured, "webhooks", "dead-letters", "list", "--account", account, "--json")
    assert listed.returncode == 0, listed.stderr
    (dead,) = json.loads(listed.stdout)
    assert dead["delivery_id"] == did and dead["status"] == 500 and dead["attempts"] == 3
    # When the endpoint recovers and the short path is run
    receiver.set_default(Reply(status=200))
    replayed = manage(configured, "replay_dead_letters", "--account", account)
    # Then it is replayed and delivered with the same webhook-id
    assert replayed.returncode == 0 and replayed.stdout == "replayed 1, skipped 0\n", replayed.stderr
    receiver.wait_for(lambda r: len(r.requests_for("/crm")) == 4, timeout_s=60)
    assert receiver.requests_for("/crm")[-1].headers["webhook-id"] == did
    wait_until(lambda: records.load(did)["status"] == "delivered", 20, message="delivered after replay")
    assert deadletters.list_dead(account) == []


def test_manage_py_webhooks_keeps_the_cli_exit_codes_errors_and_help(configured, account):
    missing = manage(configured, "webhooks", "subscriptions", "show", "--account", account, "sub_nope")
    assert missing.returncode == 1 and missing.stderr == f"error: no subscription sub_nope in account {account}\n"
    usage = manage(configured, "webhooks", "dead-letters", "list", "--account", account, "--since", "nan")
    assert usage.returncode == 2 and usage.stderr.startswith("error: 'nan' is not a time")
    nothing = manage(configured, "replay_dead_letters", "--account", account, "--json")
    assert nothing.returncode == 0 and json.loads(nothing.stdout) == {"replayed": [], "skipped": {}}
    helped = manage(configured, "webhooks", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: manage.py webhooks [OPTIONS] COMMAND")
    short = manage(configured, "help", "replay_dead_letters")
    assert short.returncode == 0 and short.stdout.startswith("Usage: manage.py replay_dead_letters [OPTIONS] [DELIVERY_IDS]")
    # And with --settings given to manage.py, as Django allows
    again = manage(configured, "webhooks", "--settings", "tests.django_project.settings", "events", "--json")
    assert again.returncode == 0 and "conversation.ended" in json.loads(again.stdout)


def test_call_command_runs_the_cli_and_raises_command_error_with_its_exit_code(dj, account):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("webhooks", "subscriptions", "list", "--account", account, "--json", stdout=out)
    assert json.loads(out.getvalue()) == []
    with pytest.raises(CommandError) as caught:
        call_command("webhooks", "subscriptions", "show", "--account", account, "sub_nope", stderr=io.StringIO())
    assert caught.value.returncode == 1
