"""Temporary subscriptions to a ``webhooks listen`` receiver on loopback, and the one narrow
exception to the URL guard they need.

The guard refuses loopback (and plain http) unless WEBHOOKS_ALLOW_NETWORKS / WEBHOOKS_ALLOW_HTTP
open it for every subscription. ``webhooks listen`` must work without that, so a listener's
subscription carries its own allowance, and a worker honours it only when all of these hold:

* it names ONE loopback address and ONE port, and the subscription's URL is exactly that IP
  literal and port (any other host, address or port is judged by the normal rules);
* the worker is on the same loopback as the listener: the same Linux boot (boot_id) and the same
  network namespace (the inode of /proc/self/ns/net). A worker on another machine or in another
  container would reach ITS OWN 127.0.0.1, where some other service may listen: it refuses
  (url_refused), so the allowance cannot be used to reach another host's loopback;
* it has not expired (a listener killed with SIGKILL cannot delete its subscription; its
  allowance ends after ``ttl_s`` anyway);
* it was written by ``create_listener`` (the operator's CLI, with Redis access): neither
  ``subscriptions.create`` nor ``subscriptions.update`` accepts or changes the field, so an
  application that lets tenants manage subscriptions cannot set it.

Someone who can write Redis can already do anything here; the allowance adds no reach beyond the
listener's own port, on the listener's own loopback, for a limited time.
"""
from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path
from typing import Iterable

from . import signing
from .subscriptions import Subscription

__all__ = ["local_identity", "local_target", "create_listener"]

DEFAULT_TTL_S = 24 * 3600


def local_identity() -> str | None:
    """This process's loopback identity: "<boot id>:<network namespace inode>", or None where
    it cannot be known (not Linux): then no listener allowance is honoured or created."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        netns = os.stat("/proc/self/ns/net")
    except OSError:
        return None
    return f"{boot}:{netns.st_dev}:{netns.st_ino}"


def local_target(sub: Subscription, *, now: float | None = None) -> tuple[str, int] | None:
    """The (address, port) the guard may let ``sub`` reach, or None (the normal rules apply)."""
    spec = sub.listener
    if not spec:
        return None
    try:
        address, port = str(spec["address"]), int(spec["port"])
        if not ipaddress.ip_address(address).is_loopback:
            return None
        if float(spec["expires_at"]) <= (time.time() if now is None else now):
            return None
    except (KeyError, TypeError, ValueError):
        return None
    identity = local_identity()
    if identity is None or spec.get("identity") != identity:
        return None
    return address, port


def create_listener(account: str, address: str, port: int, events: Iterable[str], *, scheme: str = "http",
                    ttl_s: float = DEFAULT_TTL_S, actor: str | None = None) -> tuple[Subscription, str]:
    """Create ``account``'s temporary subscription to a listener at ``scheme://address:port/``.

    Returns (subscription, its plain signing secret). Raises ValidationError (events, account),
    UrlRefused (not a loopback address), ConfigurationError (no loopback identity here).
    """
    from .errors import ConfigurationError, UrlRefused
    from .ids import check_account, new_id
    from .settings import get_settings
    from .subscriptions import _check_events, _save
    from .urlguard import check_url
    from . import secretbox

    check_account(account)
    ip = ipaddress.ip_address(address)
    if not ip.is_loopback:
        raise UrlRefused("address", f"a listener must be on loopback, not {address}")
    identity = local_identity()
    if identity is None:
        raise ConfigurationError("webhooks listen needs Linux (/proc) to prove the worker shares this loopback")
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    url = f"{scheme}://{shown}:{port}/"
    settings = get_settings()
    check_url(url, settings=settings, local_target=(str(ip), port))
    plain = signing.generate_secret()
    now = time.time()
    sub = Subscription(
        id=new_id("sub"), account=account, url=url, events=_check_events(list(events)),
        secret=secretbox.seal(plain, settings.encryption_key),
        description=f"webhooks listen on {shown}:{port} (temporary)", created_at=now, updated_at=now,
        listener={"address": str(ip), "port": port, "identity": identity, "expires_at": now + ttl_s},
    )
    _save(sub, "create", {"url": url, "events": list(sub.events), "listener": True}, actor)
    return sub, plain

