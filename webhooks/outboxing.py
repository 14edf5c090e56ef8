"""The producer's use of the outbox (WEBHOOKS_OUTBOX): spool when Redis is unreachable,
and keep spooling while a backlog remains so a new event never overtakes an older one.
A background flusher in the producing process re-publishes the backlog in order.
"""
from __future__ import annotations

import threading
from typing import Any

from .outbox import BackgroundFlusher, FlushResult, Outbox, SpooledEvent
from .settings import get_settings

__all__ = ["get_outbox", "spool_if_enabled", "spool_if_backlog", "flush_now", "stop"]

_lock = threading.Lock()
_outbox: Outbox | None = None
_flusher: BackgroundFlusher | None = None


def get_outbox() -> Outbox | None:
    """The process's outbox, or None when WEBHOOKS_OUTBOX is not set."""
    global _outbox
    s = get_settings()
    if not s.outbox_path:
        return None
    if _outbox is None:
        with _lock:
            if _outbox is None:
                _outbox = Outbox(s.outbox_path, max_events=s.outbox_max_events)
    return _outbox


def _republish(ev: SpooledEvent) -> None:
    from .events import serialize
    from .producer import enqueue_envelope

    envelope = ev.data
    enqueue_envelope(ev.account, envelope, serialize(envelope))


def _ensure_flusher(outbox: Outbox) -> None:
    global _flusher
    with _lock:
        if _flusher is None:
            _flusher = BackgroundFlusher(outbox, _republish)
            _flusher.start()


def _spool(outbox: Outbox, account: str, envelope: dict[str, Any]) -> Any:
    from .producer import PublishedEvent

    outbox.put(account, envelope["type"], envelope["id"], envelope)
    _ensure_flusher(outbox)
    return PublishedEvent(envelope["id"], envelope["type"], account, 0, spooled=True)


def spool_if_enabled(account: str, envelope: dict[str, Any]) -> Any:
    """Spool ``envelope`` when the outbox is on (returns a PublishedEvent), else None.
    Raises PublishError when the spool is full."""
    outbox = get_outbox()
    return None if outbox is None else _spool(outbox, account, envelope)


def spool_if_backlog(account: str, envelope: dict[str, Any]) -> Any:
    """While older events wait in the spool, spool this one behind them (keeps order)."""
    outbox = get_outbox()
    if outbox is None or outbox.pending() == 0:
        return None
    return _spool(outbox, account, envelope)


def flush_now() -> FlushResult | None:
    """Re-publish the backlog now, in order (``webhooks outbox flush``)."""
    outbox = get_outbox()
    return None if outbox is None else outbox.flush(_republish)


def stop() -> None:
    """Stop the background flusher and close the spool (tests, shutdown)."""
    global _outbox, _flusher
    with _lock:
        if _flusher is not None:
            _flusher.stop()
            _flusher = None
        if _outbox is not None:
            _outbox.close()
            _outbox = None
