"""Encryption at rest of subscription secrets (Fernet), on by default.

``WEBHOOKS_ENCRYPTION_KEY`` holds one Fernet key, or several comma-separated, newest first
(``MultiFernet``): new secrets are encrypted with the first, any of them decrypts. Stored form:
``enc:v1:<fernet token>``; a plain ``whsec_…`` only when it was stored before encryption was
the default, or under the development flag ``WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1``. Storing a
new secret with neither a key nor that flag is refused (ConfigurationError). Reading an
encrypted secret without the right key is an EncryptionError, never garbage.

Rotation of the key: put the new key first (``NEW,OLD``) on every process, run
``webhooks secrets encrypt`` (``reseal``: plain and old-key secrets become newest-key ones),
then drop the old key.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from .errors import ConfigurationError, EncryptionError

__all__ = ["seal", "unseal", "reseal", "is_sealed", "new_key", "key_list", "check_keys", "PLAINTEXT_REFUSED"]

_PREFIX = "enc:v1:"

PLAINTEXT_REFUSED = (
    "WEBHOOKS_ENCRYPTION_KEY is not set, and signing secrets are stored encrypted: make a key with "
    "`webhooks keygen` and set it on every process (for local development only, "
    "WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1 stores them in plain text)"
)
_BAD_KEY = (
    "WEBHOOKS_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes, several "
    "comma-separated, newest first; make one with `webhooks keygen`)"
)


def key_list(key: str | None) -> list[str]:
    """The keys in a ``WEBHOOKS_ENCRYPTION_KEY`` value, newest first (empty: none)."""
    return [part.strip() for part in (key or "").split(",") if part.strip()]


@lru_cache(maxsize=8)
def _fernets(key: str) -> tuple[Any, Any]:
    """(MultiFernet over every key, Fernet of the newest). Raises ConfigurationError."""
    from cryptography.fernet import Fernet, MultiFernet

    try:
        each = [Fernet(k.encode()) for k in key_list(key)]
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(_BAD_KEY) from exc
    if not each:
        raise ConfigurationError(_BAD_KEY)
    return MultiFernet(each), each[0]


def check_keys(key: str) -> None:
    """ConfigurationError (never repeating the value) unless every key in ``key`` is a Fernet key."""
    _fernets(key)


def new_key() -> str:
    """A fresh Fernet key for WEBHOOKS_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def is_sealed(stored: str) -> bool:
    """True when ``stored`` is an encrypted secret."""
    return stored.startswith(_PREFIX)


def seal(secret: str, key: str | None, *, allow_plaintext: bool = False) -> str:
    """Encrypt ``secret`` with the newest key. Without a key: the secret unchanged if
    ``allow_plaintext`` (development), else ConfigurationError (PLAINTEXT_REFUSED)."""
    if not key_list(key):
        if allow_plaintext:
            return secret
        raise ConfigurationError(PLAINTEXT_REFUSED)
    return _PREFIX + _fernets(key)[0].encrypt(secret.encode()).decode()  # type: ignore[no-any-return]


def unseal(stored: str, key: str | None) -> str:
    """Return the plain secret. Raises EncryptionError when the key is missing or wrong."""
    if not is_sealed(stored):
        return stored
    if not key_list(key):
        raise EncryptionError(
            "a subscription secret is encrypted but WEBHOOKS_ENCRYPTION_KEY is not set"
        )
    from cryptography.fernet import InvalidToken

    try:
        return _fernets(key)[0].decrypt(stored[len(_PREFIX):].encode()).decode()  # type: ignore[no-any-return]
    except InvalidToken:
        raise EncryptionError(
            "a subscription secret could not be decrypted: WEBHOOKS_ENCRYPTION_KEY is not the key it was encrypted with"
        ) from None


def reseal(stored: str, key: str | None) -> str:
    """``stored`` encrypted with the newest key: a plain secret is sealed, one sealed with an
    older key is re-encrypted, one already under the newest key is returned unchanged.

    Raises ConfigurationError without a key, EncryptionError if no key decrypts it.
    """
    if not key_list(key):
        raise ConfigurationError(PLAINTEXT_REFUSED)
    if not is_sealed(stored):
        return seal(stored, key)
    from cryptography.fernet import InvalidToken

    everyone, newest = _fernets(key)
    token = stored[len(_PREFIX):].encode()
    try:
        newest.decrypt(token)
        return stored
    except InvalidToken:
        pass
    try:
        return _PREFIX + everyone.rotate(token).decode()  # type: ignore[no-any-return]
    except InvalidToken:
        raise EncryptionError(
            "a subscription secret could not be decrypted: none of the WEBHOOKS_ENCRYPTION_KEY keys is the one it was encrypted with"
        ) from None
