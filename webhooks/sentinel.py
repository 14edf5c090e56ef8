"""Redis Sentinel URLs: one WEBHOOKS_REDIS_URL for the broker (kombu) and our state (redis-py).

    sentinel://[[user]:password@]host:port[,host:port...][/db]?master=NAME[&sentinel_password=P]

kombu's own spelling is accepted too (``sentinel://h1:26379;sentinel://h2:26379/0?master=NAME``).
``password`` (and ``user``) are the primary's; ``sentinel_password`` is the sentinels' own
(``requirepass`` in sentinel.conf), when they have one. The port defaults to 26379.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .errors import ConfigurationError

__all__ = ["SentinelURL", "is_sentinel", "parse"]

DEFAULT_PORT = 26379


def is_sentinel(url: str) -> bool:
    """True when ``url`` names Redis through Sentinel."""
    return url.strip().lower().startswith("sentinel://")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed Sentinel URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    def kombu_url(self) -> str:
        """kombu's form: one ``sentinel://`` URL per sentinel, the primary's credentials on each."""
        auth = ""
        if self.password is not None or self.username:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"
        return ";".join(f"sentinel://{auth}{f'[{h}]' if ':' in h else h}:{p}/{self.db}" for h, p in self.sentinels)

    def sentinel_kwargs(self, socket_timeout: float, connect_timeout: float) -> dict[str, Any]:
        """Options of the connections to the sentinels (a given dict replaces redis-py's socket defaults)."""
        kw: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": connect_timeout}
        if self.sentinel_password:
            kw["password"] = self.sentinel_password
        return kw


def _host_port(part: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    if part.startswith("["):
        host, _, rest = part[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = part.partition(":")
    if not host:
        raise ConfigurationError("WEBHOOKS_REDIS_URL: a sentinel address is empty")
    try:
        return host, int(port) if port else DEFAULT_PORT
    except ValueError:
        raise ConfigurationError(f"WEBHOOKS_REDIS_URL: {part!r} is not host:port") from None


def parse(url: str) -> SentinelURL:
    """Parse a Sentinel URL; ConfigurationError (which never shows the password) when it is not one."""
    if not is_sentinel(url):
        raise ConfigurationError("WEBHOOKS_REDIS_URL is not a sentinel:// URL")
    # kombu's spelling: several sentinel:// URLs joined by ';'
    pieces = [p for p in url.strip().split(";") if p]
    first = urlsplit(pieces[0])
    hosts_part = first.netloc.rpartition("@")[2]
    extra = [urlsplit(p).netloc.rpartition("@")[2] for p in pieces[1:]]
    query = parse_qs(urlsplit(pieces[-1]).query or first.query)
    path = next((urlsplit(p).path for p in pieces if urlsplit(p).path.strip("/")), "")
    master = (query.get("master") or query.get("master_name") or [""])[0]
    if not master:
        raise ConfigurationError(
            "WEBHOOKS_REDIS_URL: a sentinel:// URL needs the primary's name, e.g. ?master=mymaster")
    try:
        db = int(path.strip("/") or 0)
    except ValueError:
        raise ConfigurationError(f"WEBHOOKS_REDIS_URL: {path!r} is not a database number") from None
    sentinels = tuple(_host_port(p) for chunk in [hosts_part, *extra] for p in chunk.split(",") if p)
    if not sentinels:
        raise ConfigurationError("WEBHOOKS_REDIS_URL: a sentinel:// URL needs at least one sentinel address")
    sp = (query.get("sentinel_password") or [None])[0]
    return SentinelURL(
        sentinels=sentinels,
        master=master,
        db=db,
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password is not None else None,
        sentinel_password=sp,
    )
