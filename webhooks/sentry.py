"""Sentry, on when SENTRY_DSN is set: errors and exhausted deliveries, never payloads or secrets.

- ``send_default_pii=False`` and ``include_local_variables=False``: payloads and keys
  live in frame locals.
- ``trace_propagation_targets=[]``: otherwise every delivery to a customer's endpoint
  would carry our ``sentry-trace`` and ``baggage`` headers.
- ``before_send`` / ``before_breadcrumb`` scrub anything that looks like a secret or an
  email address, and strip query strings from HTTP breadcrumbs.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["init_sentry", "scrub"]

_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]+|enc:v1:[A-Za-z0-9_=-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_FERNET = re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}")


def scrub(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` with secrets and email addresses replaced, recursively."""
    if _depth > 20:
        return "[deep]"
    if isinstance(value, str):
        return _EMAIL.sub("[email]", _FERNET.sub("[secret]", _SECRET.sub("[secret]", value)))
    if isinstance(value, dict):
        return {k: scrub(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, _depth + 1) for v in value]
    return value


def _before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    event.pop("request", None)
    return scrub(event)  # type: ignore[no-any-return]


def _before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    data = crumb.get("data") or {}
    if "url" in data and isinstance(data["url"], str):
        data["url"] = data["url"].split("?", 1)[0]
    data.pop("http.query", None)
    data.pop("http.fragment", None)
    return scrub(crumb)  # type: ignore[no-any-return]


def init_sentry(dsn: str | None, *, transport: Any = None, celery: bool = False) -> bool:
    """Initialise sentry-sdk with our safe options. Returns False when ``dsn`` is empty."""
    if not dsn:
        return False
    import sentry_sdk

    integrations = []
    if celery:
        from sentry_sdk.integrations.celery import CeleryIntegration

        integrations.append(CeleryIntegration(propagate_traces=False))
    options: dict[str, Any] = dict(
        dsn=dsn,
        send_default_pii=False,
        include_local_variables=False,
        trace_propagation_targets=[],
        before_send=_before_send,
        before_breadcrumb=_before_breadcrumb,
        max_request_body_size="never",
        integrations=integrations,
        traces_sample_rate=0.0,
    )
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    return True
