"""Subscriptions: an account's endpoints, stored in Redis, always read through the account.

One Redis hash per account (``wh:subs:<account>``: id -> JSON) makes the producer's match
one read, and makes tenant isolation structural: a subscription id from another
account is simply not in this account's hash, so it is "not found". Every write to the hash
also replaces the account's version token (``bump_version``): publishers match against a
cached copy and the enqueue script refuses one whose version is not current.

Every public function raises StoreUnavailable (a documented webhooks error), never a raw
``redis.exceptions.*``, when Redis cannot be reached or refuses the command.
"""
from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, TypeVar

import redis

from . import audit, secretbox, signing
from .connection import get_redis
from .errors import NotFound, StoreUnavailable, ValidationError
from .ids import check_account, new_id
from .keys import K
from .settings import Settings, get_settings

__all__ = [
    "Subscription",
    "create",
    "get",
    "list_subscriptions",
    "update",
    "disable",
    "enable",
    "delete",
    "rotate_secret",
    "MAX_GRACE_S",
    "DEFAULT_GRACE_S",
]

log = logging.getLogger("webhooks.subscriptions")

DEFAULT_GRACE_S = 24 * 3600
MAX_GRACE_S = 7 * 24 * 3600
MAX_SUBSCRIPTIONS_PER_ACCOUNT = 1000
_TYPE_PATTERN = re.compile(r"(\*|[a-zA-Z0-9_]+(\.[a-zA-Z0-9_]+)*(\.\*)?)\Z")  # \Z: "$" matches before a final "\n"

_F = TypeVar("_F", bound=Callable[..., Any])


def _store_errors(fn: _F) -> _F:
    """Raise StoreUnavailable, never a raw redis error, from a public subscriptions call."""
    operation = f"subscriptions.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable:
            raise
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(
                f"{operation} could not reach Redis ({type(exc).__name__}); check WEBHOOKS_REDIS_URL and that Redis is up",
                operation=operation,
            ) from exc
        except redis.RedisError as exc:
            raise StoreUnavailable(f"{operation}: Redis refused the command ({type(exc).__name__})", operation=operation) from exc

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Subscription:
    """One endpoint of one account. ``secrets`` are stored (maybe sealed) forms; use
    ``signing_secrets()`` for the plain, live ones."""

    id: str
    account: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    previous_secrets: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    transform: dict[str, Any] | None = None
    retry_schedule: str | None = None
    # Set only by `webhooks listen` (webhooks/listening.py), never by create/update. Kept before
    # rate_limit_per_s: claim.lua reads that one as the JSON's last field.
    listener: dict[str, Any] | None = None
    rate_limit_per_s: float | None = None

    def wants(self, event_type: str) -> bool:
        """True when this subscription's event patterns match ``event_type``."""
        for pattern in self.events:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False

    def signing_secrets(self, now: float | None = None, settings: Settings | None = None) -> list[str]:
        """Plain secrets that sign now: the current one, plus rotated ones in their grace period."""
        now = time.time() if now is None else now
        key = (settings or get_settings()).encryption_key
        live = [secretbox.unseal(self.secret, key)]
        live += [secretbox.unseal(s, key) for s, until in self.previous_secrets if until > now]
        return live

    def to_json(self) -> str:
        d = asdict(self)
        d["events"] = list(self.events)
        d["previous_secrets"] = [list(p) for p in self.previous_secrets]
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Subscription":
        d = json.loads(raw)
        d["events"] = tuple(d["events"])
        d["previous_secrets"] = tuple((s, float(u)) for s, u in d.get("previous_secrets", ()))
        return cls(**d)

    def public(self, *, reveal: bool = False, now: float | None = None) -> dict[str, Any]:
        """A listing-safe dict: secrets hidden unless ``reveal`` (then the plain live ones)."""
        now = time.time() if now is None else now
        d = asdict(self)
        d["events"] = list(self.events)
        d.pop("previous_secrets")
        d["secret"] = self.signing_secrets(now)[0] if reveal else "whsec_••••••••"
        d["rotation_grace_until"] = max((u for _, u in self.previous_secrets if u > now), default=None)
        if reveal:
            d["previous_secrets"] = self.signing_secrets(now)[1:]
        return d


def _check_description(text: Any) -> str:
    text = "" if text is None else str(text)
    if len(text) > 500:
        raise ValidationError("description is over 500 characters", {"description": ["too long"]})
    return text


def _check_events(events: Iterable[str]) -> tuple[str, ...]:
    from .events import is_known_type

    if isinstance(events, str):
        events = [events]
    out = []
    bad = []
    for e in events:
        if not isinstance(e, str) or not _TYPE_PATTERN.match(e):
            bad.append(f"{e!r} is not an event type pattern")
        elif "*" not in e and not is_known_type(e):
            bad.append(f"{e!r} is not a known event type (see `webhooks events`)")
        else:
            out.append(e)
    if bad:
        raise ValidationError("events: " + "; ".join(bad), {"events": bad})
    if not out:
        raise ValidationError("events: at least one event type (or '*') is required", {"events": ["empty"]})
    return tuple(dict.fromkeys(out))


def _check_url(url: str, settings: Settings) -> str:
    from .urlguard import check_url

    if not isinstance(url, str):
        raise ValidationError("url must be a string", {"url": ["not a string"]})
    check_url(url, settings=settings)
    return url


def _check_transform(spec: dict[str, Any] | None, events: tuple[str, ...]) -> dict[str, Any] | None:
    if not spec:
        return None
    from .transform import TransformSpec, compile_spec
    from .transform.paths import check_paths

    ts = TransformSpec.from_dict(spec)
    compile_spec(ts)
    checked = ts.to_dict()
    check_paths(checked, events)  # a path no subscribed catalogue type has is refused, with a suggestion
    return checked


def _check_schedule(text: str | None) -> str | None:
    if not text:
        return None
    from .policy import RetrySchedule

    return RetrySchedule.parse(text).to_text()


def _check_rate(rate: float | None) -> float | None:
    if rate is None:
        return None
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValidationError("rate_limit_per_s must be a number", {"rate_limit_per_s": ["not a number"]}) from None
    if not 0 < value <= 10_000:
        raise ValidationError("rate_limit_per_s must be in (0, 10000]", {"rate_limit_per_s": ["out of range"]})
    return value


def bump_version(pipe: Any, account: str) -> None:
    """Join ``pipe`` (a transaction writing ``account``'s subscriptions hash): replace the
    account's subscriptions version, so every publisher's cached copy is refused as stale.
    Every writer of the hash calls it; a random token, not a counter, so a flushed or
    restored Redis never repeats a version a publisher still holds."""
    pipe.set(K.subs_version(account), new_id("v"))


def _save(sub: Subscription, action: str, changes: dict[str, Any], actor: str | None) -> None:
    pipe = get_redis().pipeline(transaction=True)
    pipe.hset(K.subs(sub.account), sub.id, sub.to_json())
    bump_version(pipe, sub.account)
    pipe.sadd(K.accounts(), sub.account)
    audit.record(sub.account, action, subscription_id=sub.id, changes=changes, actor=actor, pipe=pipe)
    pipe.execute()


@_store_errors
def create(
    account: str,
    url: str,
    events: Iterable[str] | str,
    *,
    secret: str | None = None,
    description: str = "",
    transform: dict[str, Any] | None = None,
    retry_schedule: str | None = None,
    rate_limit_per_s: float | None = None,
    actor: str | None = None,
) -> Subscription:
    """Create a subscription. The URL is vetted by the URL guard (https, public address); a
    transform's paths are checked against the schemas of the catalogue event types subscribed
    to (``custom.*`` and ``*`` are free-form).

    Raises ValidationError (naming the field; TransformError with "did you mean" for a path
    no subscribed type has), UrlRefused; ConfigurationError when no WEBHOOKS_ENCRYPTION_KEY is
    set to encrypt the secret (unless WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1, for development).
    Returns the subscription;
    its secret is shown by ``public(reveal=True)`` (once, at creation, by the CLI).
    """
    settings = get_settings()
    check_account(account)
    if secret is not None:
        signing.decode_secret(secret)
    plain = secret or signing.generate_secret()
    now = time.time()
    checked_url = _check_url(url, settings)
    checked_events = _check_events(events)
    sub = Subscription(
        id=new_id("sub"),
        account=account,
        url=checked_url,
        events=checked_events,
        secret=secretbox.seal(plain, settings.encryption_key, allow_plaintext=settings.allow_plaintext_secrets),
        description=_check_description(description),
        created_at=now,
        updated_at=now,
        transform=_check_transform(transform, checked_events),
        retry_schedule=_check_schedule(retry_schedule),
        rate_limit_per_s=_check_rate(rate_limit_per_s),
    )
    if get_redis().hlen(K.subs(account)) >= MAX_SUBSCRIPTIONS_PER_ACCOUNT:
        raise ValidationError(
            f"account {account} already has {MAX_SUBSCRIPTIONS_PER_ACCOUNT} subscriptions",
            {"account": ["too many subscriptions"]},
        )
    _save(sub, "create", {"url": sub.url, "events": list(sub.events)}, actor)
    return sub


@_store_errors
def get(account: str, subscription_id: str) -> Subscription:
    """The subscription ``subscription_id`` of ``account``. Raises NotFound, StoreUnavailable."""
    return _get(account, subscription_id)


def _get(account: str, subscription_id: str) -> Subscription:
    check_account(account)
    raw = get_redis().hget(K.subs(account), subscription_id)
    if raw is None:
        raise NotFound(f"no subscription {subscription_id} in account {account}")
    return Subscription.from_json(raw)


@_store_errors
def list_subscriptions(account: str) -> list[Subscription]:
    """Every subscription of ``account``, oldest first."""
    check_account(account)
    return sorted(readable(account, get_redis().hgetall(K.subs(account))), key=lambda s: s.created_at)


_decoded: "OrderedDict[bytes, Subscription]" = OrderedDict()
_decoded_lock = threading.Lock()
_DECODED_KEPT = 8192


def _decode(value: bytes) -> Subscription:
    """``Subscription.from_json`` once per stored version (the JSON changes with every
    update, so it is its own version): the producer reads every subscription of an account
    on every publish. The objects are frozen, so sharing them is safe."""
    with _decoded_lock:
        hit = _decoded.get(value)
        if hit is not None:
            _decoded.move_to_end(value)
            return hit
    sub = Subscription.from_json(value)
    with _decoded_lock:
        _decoded[value] = sub
        while len(_decoded) > _DECODED_KEPT:
            _decoded.popitem(last=False)
    return sub


def readable(account: str, raw: dict[bytes, bytes]) -> list[Subscription]:
    """Parse an account's stored records; an unreadable one is logged and skipped, so one
    damaged record never stops deliveries or listings for the rest of the account."""
    out = []
    for sub_id, value in raw.items():
        try:
            out.append(_decode(value))
        except (ValueError, TypeError, KeyError):
            log.error("subscription record %r of account %s is unreadable; skipped", sub_id, account)
    return out


_UPDATABLE = {"url", "events", "description", "transform", "retry_schedule", "rate_limit_per_s"}


@_store_errors
def update(account: str, subscription_id: str, *, actor: str | None = None, **changes: Any) -> Subscription:
    """Change some of: url, events, description, transform, retry_schedule, rate_limit_per_s.

    Every value is validated as at creation. Raises NotFound, ValidationError.
    """
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValidationError(f"cannot update {', '.join(sorted(unknown))}", {k: ["not updatable"] for k in unknown})
    sub = _get(account, subscription_id)
    settings = get_settings()
    checked: dict[str, Any] = {}
    if "url" in changes:
        checked["url"] = _check_url(changes["url"], settings)
    if "events" in changes:
        checked["events"] = _check_events(changes["events"])
    if "description" in changes:
        checked["description"] = _check_description(changes["description"])
    if "transform" in changes:
        checked["transform"] = _check_transform(changes["transform"], checked.get("events", sub.events))
    elif "events" in changes and sub.transform:
        # the kept transform must make sense for the new event types too
        _check_transform(sub.transform, checked["events"])
    if "retry_schedule" in changes:
        checked["retry_schedule"] = _check_schedule(changes["retry_schedule"])
    if "rate_limit_per_s" in changes:
        checked["rate_limit_per_s"] = _check_rate(changes["rate_limit_per_s"])
    new = replace(sub, updated_at=time.time(), **checked)
    audited = {k: (list(v) if isinstance(v, tuple) else v) for k, v in checked.items()}
    _save(new, "update", audited, actor)
    return new


def _set_enabled(account: str, subscription_id: str, enabled: bool, reason: str | None, actor: str | None) -> Subscription:
    sub = _get(account, subscription_id)
    if sub.enabled == enabled:
        return sub  # nothing changes, so nothing is written and no audit entry claims a change
    new = replace(sub, enabled=enabled, disabled_reason=None if enabled else (reason or "disabled by operator"), updated_at=time.time())
    _save(new, "enable" if enabled else "disable", {"reason": new.disabled_reason} if not enabled else {}, actor)
    return new


@_store_errors
def disable(account: str, subscription_id: str, *, reason: str | None = None, actor: str | None = None) -> Subscription:
    """Stop delivering to this subscription (deliveries in flight are discarded with a reason).
    A subscription already disabled is left as it is (its reason kept, no audit entry)."""
    return _set_enabled(account, subscription_id, False, reason, actor)


@_store_errors
def enable(account: str, subscription_id: str, *, actor: str | None = None) -> Subscription:
    """Deliver to this subscription again; one already enabled is left as it is (no audit entry)."""
    return _set_enabled(account, subscription_id, True, None, actor)


@_store_errors
def delete(account: str, subscription_id: str, *, actor: str | None = None) -> None:
    """Delete the subscription. Raises NotFound."""
    sub = _get(account, subscription_id)
    pipe = get_redis().pipeline(transaction=True)
    pipe.hdel(K.subs(account), sub.id)
    bump_version(pipe, account)
    audit.record(account, "delete", subscription_id=sub.id, changes={"url": sub.url}, actor=actor, pipe=pipe)
    pipe.execute()


@_store_errors
def rotate_secret(
    account: str,
    subscription_id: str,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    new_secret: str | None = None,
    actor: str | None = None,
) -> Subscription:
    """Replace the secret; the old one keeps signing for ``grace_s`` (at most 7 days),
    so receivers can switch without losing a delivery. Raises ValidationError, NotFound."""
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise ValidationError(
            f"grace period must be between 0 and {MAX_GRACE_S} seconds (7 days)", {"grace_s": ["out of range"]}
        )
    if new_secret is not None:
        signing.decode_secret(new_secret)
    settings = get_settings()
    sub = _get(account, subscription_id)
    now = time.time()
    # Read the live secrets first: without the right key this raises EncryptionError before any
    # write, instead of storing a plaintext secret beside encrypted ones that nobody can show.
    sub.signing_secrets(now, settings)
    kept = tuple((s, u) for s, u in sub.previous_secrets if u > now)
    previous = kept + ((sub.secret, now + grace_s),) if grace_s > 0 else kept
    new = replace(
        sub,
        secret=secretbox.seal(new_secret or signing.generate_secret(), settings.encryption_key,
                              allow_plaintext=settings.allow_plaintext_secrets),
        previous_secrets=previous,
        updated_at=now,
    )
    _save(new, "rotate-secret", {"grace_s": grace_s}, actor)
    return new
