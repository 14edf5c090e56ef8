"""The Django app: installs Django's settings as the source of chat-webhooks settings."""
from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """``INSTALLED_APPS = [..., "webhooks.contrib.django"]``."""

    name = "webhooks.contrib.django"
    label = "chat_webhooks"
    verbose_name = "chat-webhooks"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the settings check)
        from .conf import install

        install()
