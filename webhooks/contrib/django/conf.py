"""Settings from Django's ``settings.WEBHOOKS`` as an alternative to the environment.

``WEBHOOKS = {"REDIS_URL": "redis://redis:6379/0", "MAX_PAYLOAD_BYTES": 262144, ...}``: the
names of the settings table without the ``WEBHOOKS_`` prefix (``SENTRY_DSN`` as is; the full
names are accepted too). Values may be text, numbers, booleans, lists (joined with commas, e.g.
``ALLOW_NETWORKS`` or ``RETRY_SCHEDULE``) or None (the default). They pass through the same
``Settings.from_env`` as environment variables, so the defaults and the validation are the
same. One value per setting: a setting given both in ``WEBHOOKS`` and in the environment with
a different value is a ConfigurationError naming both places; settings absent from ``WEBHOOKS``
are still read from the environment (secrets may stay there).

The Celery workers do not import Django: give them the same values in their environment.
"""
from __future__ import annotations

import difflib
import os
from typing import Any, Mapping

from ...errors import ConfigurationError
from ...settings import SETTINGS_DOC, set_source

__all__ = ["full_name", "as_text", "django_source", "install", "uninstall"]


def full_name(key: str) -> str:
    """``"REDIS_URL"`` -> ``"WEBHOOKS_REDIS_URL"``; raises ConfigurationError for an unknown key."""
    for name in (key, f"WEBHOOKS_{key}"):
        if name in SETTINGS_DOC:
            return name
    known = [n.removeprefix("WEBHOOKS_") for n in SETTINGS_DOC]
    close = difflib.get_close_matches(key.removeprefix("WEBHOOKS_"), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(f"settings.WEBHOOKS[{key!r}] is not a chat-webhooks setting{hint}")


def as_text(key: str, value: Any) -> str:
    """A WEBHOOKS value as the environment would spell it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise ConfigurationError(f"settings.WEBHOOKS[{key!r}] must be text, a number, a boolean, a list or None, "
                             f"not {type(value).__name__}")


def django_source(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The mapping Settings.from_env reads: the environment with settings.WEBHOOKS on top.

    Raises ConfigurationError for an unknown key, a value of the wrong kind, or a setting whose
    value differs between the two places."""
    from django.conf import settings

    environ = os.environ if environ is None else environ
    given = getattr(settings, "WEBHOOKS", None) or {}
    if not isinstance(given, Mapping):
        raise ConfigurationError(f"settings.WEBHOOKS must be a dict, not {type(given).__name__}")
    merged = dict(environ)
    for key, value in given.items():
        name = full_name(str(key))
        text = as_text(str(key), value)
        if name in environ and environ[name] != text:
            raise ConfigurationError(f"{name} is set both in the environment and in settings.WEBHOOKS[{key!r}], with "
                                     f"different values; set it in one place")
        merged[name] = text
    return merged


def install() -> None:
    """Read chat-webhooks settings through ``django_source`` from now on (AppConfig.ready)."""
    set_source(django_source)


def uninstall() -> None:
    """Back to the environment alone (tests)."""
    set_source(None)
