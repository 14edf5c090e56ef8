"""chat-webhooks in a Django project (``pip install chat-webhooks[django]``).

Add ``"webhooks.contrib.django"`` to ``INSTALLED_APPS``. Then:

- settings may come from ``settings.WEBHOOKS = {"REDIS_URL": ..., ...}`` (names without the
  ``WEBHOOKS_`` prefix) instead of the environment: one value per setting, the same
  validation (``webhooks.contrib.django.conf``);
- ``publish_on_commit(account, type, data, event_id=...)`` publishes when the surrounding
  transaction commits, nothing on rollback, with a deterministic event id so a retried
  request enqueues once (``webhooks.contrib.django.publish``);
- ``python manage.py webhooks …`` is the whole ``webhooks`` CLI (same options, exit codes and
  ``--json``) and ``python manage.py replay_dead_letters --account ACME`` the short path to
  re-send an account's dead letters.

See docs/django.md.
"""
from __future__ import annotations

from .publish import event_id_for, publish_on_commit

__all__ = ["publish_on_commit", "event_id_for"]
