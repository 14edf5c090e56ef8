"""Publish when the database transaction commits, and only then.

``publish()`` called inside a transaction that later rolls back sends an event about something
that never happened; called before the commit, a worker may deliver it before the row is
visible. ``publish_on_commit`` validates the event at once (a bad event raises in the request,
not after the commit) and hands ``publish()`` to ``transaction.on_commit``.

The event id is required and should be derived from what happened (``event_id_for(conversation.pk,
"ended")``): a retried request publishes the same id, and ``publish()`` enqueues an id once per
account, so it is not sent twice.

If Redis cannot be reached at commit time, the row is committed and ``publish()`` raises
PublishError after it (``robust=False``, Django's default: it surfaces from the ``atomic`` block
or the view) or is logged (``robust=True``). Set ``WEBHOOKS_OUTBOX`` to spool such events to a
local file and send them when Redis is back: with it, a committed event is not lost.
"""
from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from django.db import transaction

from ... import events
from ...errors import PublishError
from ...ids import check_account
from ...settings import get_settings

__all__ = ["publish_on_commit", "event_id_for"]

log = logging.getLogger("webhooks.contrib.django")

_ID_OK = re.compile(r"[A-Za-z0-9_-]{1,100}\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def event_id_for(*parts: object) -> str:
    """A deterministic event id from what happened, e.g. ``event_id_for("conv", 42, "ended")``
    -> ``"conv-42-ended"``; parts with other characters, or ids over 100 characters, become
    ``"h-"`` plus a SHA-256 of the parts (the same parts always give the same id)."""
    if not parts:
        raise ValueError("event_id_for needs at least one part")
    plain = "-".join(str(p) for p in parts)
    if _ID_OK.match(plain):
        return plain
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:40]
    readable = _UNSAFE.sub("_", plain)[:50].strip("_-")
    return f"h-{readable}-{digest}" if readable else f"h-{digest}"


def publish_on_commit(account: str, event_type: str, data: Any, *, event_id: str, using: str | None = None,
                      robust: bool = False) -> str:
    """Publish ``event_type`` with ``data`` for ``account`` when the current transaction on
    ``using`` commits; nothing if it rolls back (or the savepoint it was called in does).
    Outside a transaction (autocommit) it publishes at once, as ``on_commit`` does.

    The event is validated now, against the catalogue and WEBHOOKS_MAX_PAYLOAD_BYTES, and the
    cleaned data is what is sent (later changes to ``data`` do not leak in).

    Raises ValidationError / UnknownEventType / PayloadTooLarge now; PublishError at commit
    (see the module docstring; ``robust=True`` logs it instead). Returns ``event_id``.
    """
    check_account(account)
    envelope = events.build_envelope(event_type, data, event_id=event_id)
    events.check_size(events.serialize(envelope), get_settings().max_payload_bytes)
    cleaned = envelope["data"]

    def send() -> None:
        from ... import publish

        try:
            publish(account, event_type, cleaned, event_id=event_id)
        except PublishError:
            log.error("publish of %s %s for account %s after commit failed; publish it again with the same "
                      "event_id (or set WEBHOOKS_OUTBOX)", event_type, event_id, account)
            raise

    transaction.on_commit(send, using=using, robust=robust)
    return event_id
