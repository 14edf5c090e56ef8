"""``python manage.py webhooks …``: the whole ``webhooks`` CLI (same options, exit codes, --json)."""
from __future__ import annotations

from ._cli import CliCommand


class Command(CliCommand):
    help = "The chat-webhooks CLI: subscriptions, deliveries, dead letters, status, audit (`manage.py webhooks --help`)."
