"""Find and encrypt subscription secrets still stored in plain text (or under an older key).

``count_plaintext()`` counts the stored secrets, current and rotated-out ones, that are not
encrypted; workers log it at start-up and ``webhooks status`` shows it. ``encrypt_stored()``
(``webhooks secrets encrypt``) re-seals every stored secret with the newest key of
``WEBHOOKS_ENCRYPTION_KEY``: plain ones are encrypted, ones under an older key re-encrypted,
ones already under the newest key left alone, so running it twice changes nothing. Each
account's hash is rewritten under WATCH, so a subscription changed meanwhile is re-read, never
overwritten with a stale copy. Secrets never appear in a log line or a result.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import redis

from . import secretbox, subscriptions
from .connection import get_redis
from .keys import K
from .settings import Settings, get_settings

__all__ = ["SweepResult", "count_plaintext", "encrypt_stored", "startup_warnings"]

log = logging.getLogger("webhooks.secrets")

_BATCH = 100


@dataclass(frozen=True)
class SweepResult:
    """What ``encrypt_stored`` did: secrets (current + rotated-out) changed and left alone."""

    accounts: int
    subscriptions: int
    encrypted: int
    unchanged: int


def _accounts(r: redis.Redis) -> list[str]:
    return sorted(a.decode() for a in r.smembers(K.accounts()))


def _stored_secrets(record: dict[str, Any]) -> Iterator[str]:
    yield record.get("secret", "")
    for pair in record.get("previous_secrets") or ():
        yield pair[0]


def count_plaintext(account: str | None = None) -> int:
    """How many stored secrets (current and rotated-out) are in plain text, in ``account``
    or in every account."""
    r = get_redis()
    accounts = [account] if account else _accounts(r)
    count = 0
    for i in range(0, len(accounts), _BATCH):
        pipe = r.pipeline(transaction=False)
        for a in accounts[i : i + _BATCH]:
            pipe.hvals(K.subs(a))
        for values in pipe.execute():
            for raw in values:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                count += sum(1 for s in _stored_secrets(record) if s and not secretbox.is_sealed(s))
    return count


def _resealed(raw: bytes, key: str) -> tuple[str | None, int, int]:
    """(new JSON or None if unchanged, secrets changed, secrets unchanged) for one record."""
    record = json.loads(raw)
    changed = unchanged = 0
    new_secret = secretbox.reseal(record["secret"], key)
    if new_secret != record["secret"]:
        record["secret"] = new_secret
        changed += 1
    else:
        unchanged += 1
    pairs = []
    for stored, until in record.get("previous_secrets") or ():
        again = secretbox.reseal(stored, key)
        changed += again != stored
        unchanged += again == stored
        pairs.append([again, until])
    record["previous_secrets"] = pairs
    if not changed:
        return None, 0, unchanged
    return json.dumps(record, separators=(",", ":")), changed, unchanged


def encrypt_stored(settings: Settings | None = None) -> SweepResult:
    """Encrypt every stored secret with the newest key (idempotent; see the module docstring).

    Raises ConfigurationError without WEBHOOKS_ENCRYPTION_KEY, EncryptionError when a secret
    was encrypted with a key that is not in it (nothing of that account is written then).
    """
    settings = settings or get_settings()
    key = settings.encryption_key
    if not secretbox.key_list(key):
        from .errors import ConfigurationError

        raise ConfigurationError(secretbox.PLAINTEXT_REFUSED)
    assert key is not None
    r = get_redis()
    accounts = _accounts(r)
    subs = encrypted = unchanged = 0
    for account in accounts:
        name = K.subs(account)
        while True:
            with r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(name)
                    records = pipe.hgetall(name)
                    updates: dict[bytes, str] = {}
                    n_changed = n_unchanged = 0
                    for sub_id, raw in records.items():
                        try:
                            new, changed, same = _resealed(raw, key)
                        except (ValueError, KeyError, TypeError):
                            log.error("subscription record %r of account %s is unreadable; skipped", sub_id, account)
                            continue
                        n_changed += changed
                        n_unchanged += same
                        if new is not None:
                            updates[sub_id] = new
                    pipe.multi()
                    if updates:
                        pipe.hset(name, mapping=updates)  # type: ignore[arg-type]
                        subscriptions.bump_version(pipe, account)
                    pipe.execute()
                except redis.WatchError:
                    continue  # someone changed this account meanwhile: read it again
            break
        subs += len(records)
        encrypted += n_changed
        unchanged += n_unchanged
        if n_changed:
            log.info("account %s: %d secret(s) encrypted with the newest key", account, n_changed)
    return SweepResult(accounts=len(accounts), subscriptions=subs, encrypted=encrypted, unchanged=unchanged)


def startup_warnings(settings: Settings | None = None) -> list[str]:
    """Sentences a worker logs at start: no key, plaintext allowed, plain secrets left."""
    settings = settings or get_settings()
    out = []
    if not secretbox.key_list(settings.encryption_key):
        if settings.allow_plaintext_secrets:
            out.append("WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1: new signing secrets are stored in plain text (development only)")
        else:
            out.append("WEBHOOKS_ENCRYPTION_KEY is not set: creating or rotating a subscription secret will be refused")
    plain = count_plaintext()
    if plain:
        out.append(
            f"{plain} subscription secret(s) are stored in plain text in Redis; "
            "set WEBHOOKS_ENCRYPTION_KEY and run `webhooks secrets encrypt`"
        )
    return out
