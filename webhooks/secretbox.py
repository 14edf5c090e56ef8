"""Optional encryption at rest of subscription secrets (Fernet, key from WEBHOOKS_ENCRYPTION_KEY).

Stored form: a plain ``whsec_…`` secret, or ``enc:v1:<fernet token>`` when a key is set.
Reading an encrypted secret without the right key is an EncryptionError, never garbage.
"""
from __future__ import annotations

from functools import lru_cache

from .errors import ConfigurationError, EncryptionError

__all__ = ["seal", "unseal", "is_sealed", "new_key"]

_PREFIX = "enc:v1:"


@lru_cache(maxsize=4)
def _fernet(key: str):  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    try:
        return Fernet(key.encode())
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            "WEBHOOKS_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes; "
            "make one with `webhooks keygen`)"
        ) from exc


def new_key() -> str:
    """A fresh Fernet key for WEBHOOKS_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def is_sealed(stored: str) -> bool:
    """True when ``stored`` is an encrypted secret."""
    return stored.startswith(_PREFIX)


def seal(secret: str, key: str | None) -> str:
    """Encrypt ``secret`` when a key is configured; otherwise return it unchanged."""
    if not key:
        return secret
    return _PREFIX + _fernet(key).encrypt(secret.encode()).decode()


def unseal(stored: str, key: str | None) -> str:
    """Return the plain secret. Raises EncryptionError when the key is missing or wrong."""
    if not is_sealed(stored):
        return stored
    if not key:
        raise EncryptionError(
            "a subscription secret is encrypted but WEBHOOKS_ENCRYPTION_KEY is not set"
        )
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(key).decrypt(stored[len(_PREFIX):].encode()).decode()
    except InvalidToken:
        raise EncryptionError(
            "a subscription secret could not be decrypted: WEBHOOKS_ENCRYPTION_KEY is not the key it was encrypted with"
        ) from None
