"""Identifiers: a prefix and 22 url-safe random characters (128 bits)."""
from __future__ import annotations

import base64
import os
import re
import secrets

__all__ = ["new_id", "new_ids", "check_account", "ACCOUNT_RE"]

ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z, not $: "$" also matches before a final "\n"


def new_id(prefix: str) -> str:
    """A new random id such as ``evt_2Qm…``; prefixes: evt, sub, msg (delivery), att."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` new ids like ``new_id``'s, from one read of the OS's random source."""
    raw = os.urandom(16 * n)
    enc = base64.urlsafe_b64encode
    return [f"{prefix}_{enc(raw[i:i + 16])[:22].decode()}" for i in range(0, 16 * n, 16)]


def check_account(account: str) -> str:
    """Return ``account`` if it is a valid account name, else raise ValidationError."""
    from .errors import ValidationError

    if not isinstance(account, str) or not ACCOUNT_RE.match(account):
        raise ValidationError(
            "account must be 1-64 characters of letters, digits, '_', '.', '-'",
            {"account": ["invalid account name"]},
        )
    return account
