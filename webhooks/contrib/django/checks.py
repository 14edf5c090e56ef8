"""``manage.py check`` reports chat-webhooks settings that cannot work, before a request does."""
from __future__ import annotations

from typing import Any

from django.core.checks import Error, register


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from ...errors import ConfigurationError
    from ...settings import reload_settings

    try:
        reload_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="See docs/settings.md and docs/django.md.", id="chat_webhooks.E001")]
    return []
