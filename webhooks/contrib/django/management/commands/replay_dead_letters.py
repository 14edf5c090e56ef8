"""``python manage.py replay_dead_letters --account ACME``: re-send the account's dead letters.

The short path of ``webhooks dead-letters replay``: with no selection it replays every dead
letter of the account (``--all``); ``DELIVERY_ID…``, ``--subscription`` and ``--since`` narrow
it, ``--json`` prints the result. Receivers see the same webhook-id with a fresh signature.
"""
from __future__ import annotations

from ._cli import CliCommand

_SELECTORS = {"--all", "--subscription", "--since"}
_TAKES_VALUE = {"--account", "-a", "--subscription", "--since", "--actor"}


def _has_selection(args: list[str]) -> bool:
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _SELECTORS:
            return True
        if name in _TAKES_VALUE and "=" not in arg:
            skip = True
        elif not arg.startswith("-"):
            return True  # a delivery id
    return False


class Command(CliCommand):
    help = "Re-send dead letters of an account (all unless ids, --subscription or --since are given)."
    path = ("dead-letters", "replay")

    def cli_args(self, args: list[str]) -> list[str]:
        if "--help" in args or "-h" in args or _has_selection(args):
            return args
        return [*args, "--all"]
