"""The demo behind ``make demo`` (``python -m demo``).

It publishes sample chat events and shows them delivered, signed, retried, dead-lettered and
replayed, on a real Redis, a real Celery worker and a local HTTPS receiver, then stops
everything it started. Modules: ``redisd`` (find or start a Redis), ``processes`` (the worker
and process-group helpers), ``endpoints`` (the HTTPS receiver with switchable failing paths),
``show`` (terminal output), ``run`` (the steps).
"""
from __future__ import annotations

__all__: list[str] = []
