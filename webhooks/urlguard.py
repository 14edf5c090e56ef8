"""The SSRF guard: one check for endpoint URLs, run when a subscription is saved AND before
every delivery (DNS answers change; a name that was public yesterday may be 10.0.0.5 today).

``check_url`` parses the URL, resolves the host and vets EVERY address; the transport then
connects to ``Target.addresses[0]`` itself and never resolves again, so what was vetted is what
is connected to. Each refusal raises ``UrlRefused(rule, detail)``; the rules are:

    length       the URL is longer than MAX_URL_LENGTH characters
    syntax       whitespace/control characters, or the URL cannot be parsed
    scheme       not https (http only with ``settings.allow_http``)
    credentials  user:password@ in the URL
    fragment     a #fragment (never sent to a server; a URL that has one is a mistake)
    host         no host, a malformed name, a numeric form that some resolvers read as an IP
                 (127.1, 0x7f000001, 2130706433, 0177.0.0.1, ...), or localhost / *.localhost
    port         not 1..65535. Every port in that range is allowed: receivers run on odd
                 ports, and the address rules (not port lists) are what keep internal services
                 out of reach
    dns          the name does not resolve, or resolves to nothing usable
    address      an address (literal or resolved) is not globally routable and not inside
                 ``settings.allow_networks``

An address is allowed when it is inside one of ``settings.allow_networks`` (the escape hatch for
local work, e.g. 127.0.0.0/8), or when it is global and none of: unspecified, loopback,
link-local (incl. 169.254.169.254), multicast, private, reserved, shared/CGNAT 100.64/10,
site-local, ULA. IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96, 6to4
2002::/16, NAT64 64:ff9b::/96) are judged by the IPv4 address inside; local-use NAT64
64:ff9b:1::/48 and Teredo 2001::/32 are refused.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

from .errors import UrlRefused
from .settings import Settings, get_settings

__all__ = [
    "Resolver",
    "Target",
    "MAX_URL_LENGTH",
    "parse_url",
    "check_url",
    "system_resolver",
    "address_refusal",
]

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
# WHATWG URL / inet_aton read a host whose last label is a number (decimal, 0-octal, 0x-hex)
# as an IPv4 address; we refuse every such form that is not a canonical dotted quad.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)\Z")
_CANONICAL_QUAD = re.compile(r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\Z")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

_SHARED_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


@dataclass(frozen=True)
class Target:
    """A vetted endpoint. ``host`` is lower-case IDNA without a trailing dot (an IPv6 literal
    has no brackets); ``path`` includes the query; ``addresses`` are the vetted IPs in resolver
    order; ``url`` is the normalized URL."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """The Host header value: the hostname (bracketed if IPv6), with :port if not default."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS.get(self.scheme):
            return f"{shown}:{self.port}"
        return shown


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with ``socket.getaddrinfo`` (IPv4 and IPv6); IPs in resolver order.

    Raises ``socket.gaierror`` (an OSError) when the name does not resolve.
    """
    answers = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    seen: dict[str, None] = {}
    for family, _type, _proto, _canon, sockaddr in answers:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def _refuse_numeric_forms(host: str) -> None:
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]) and not _CANONICAL_QUAD.match(host):
        raise UrlRefused("host", f"{host!r} is a numeric host form that is not a dotted quad")


def _normalize_name(raw: str) -> str:
    if not raw:
        raise UrlRefused("host", "the URL has no host")
    if "%" in raw:
        raise UrlRefused("host", "percent-encoded host")
    host = raw[:-1] if raw.endswith(".") else raw  # one trailing dot: "localhost." is localhost
    if not host:
        raise UrlRefused("host", "the URL has no host")
    try:
        # the idna codec also maps full-width letters and ideographic dots (NFKC) first
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UrlRefused("host", f"{host!r} is not a valid host name") from exc
    if len(ascii_host) > 253:
        raise UrlRefused("host", "host name longer than 253 characters")
    labels = ascii_host.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise UrlRefused("host", f"{ascii_host!r} is not a valid host name")
    _refuse_numeric_forms(ascii_host)
    return ascii_host


def _split_netloc(netloc: str) -> tuple[str, str | None, bool]:
    """Return (host, port text or None, is_bracketed_ipv6)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise UrlRefused("host", "unclosed '[' in the host")
        rest = netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UrlRefused("host", "unexpected text after the IPv6 literal")
        return netloc[1:end], (rest[1:] if rest else None), True
    host, sep, port = netloc.rpartition(":")
    if not sep:
        return netloc, None, False
    if ":" in host:
        raise UrlRefused("host", "an IPv6 literal must be in brackets")
    return host, port, False


def parse_url(url: str, *, allow_http: bool = False) -> tuple[str, str, int, str]:
    """Check the URL's syntax rules (no DNS) and normalize it.

    Returns ``(scheme, host, port, path)``: host lower-case IDNA without trailing dot (IPv6
    without brackets, compressed), path with query and at least "/".
    Raises UrlRefused naming the rule (see the module docstring).
    """
    if not isinstance(url, str):
        raise UrlRefused("syntax", "the URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("length", f"URL is {len(url)} characters, over {MAX_URL_LENGTH}")
    if _FORBIDDEN_CHARS.search(url):
        raise UrlRefused("syntax", "whitespace, control characters or backslashes in the URL")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlRefused("syntax", "the URL cannot be parsed") from exc
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and allow_http):
        shown = scheme or "(none)"
        hint = " (for local work only, WEBHOOKS_ALLOW_HTTP=1 allows http://)" if scheme == "http" else ""
        raise UrlRefused("scheme", f"scheme {shown!r} is not allowed; use https{hint}")
    if "@" in parts.netloc:
        raise UrlRefused("credentials", "user information (user:password@) is not allowed in the URL")
    if parts.fragment or url.endswith("#"):
        raise UrlRefused("fragment", "the URL has a #fragment")
    raw_host, port_text, bracketed = _split_netloc(parts.netloc)
    if bracketed:
        try:
            host = ipaddress.IPv6Address(raw_host).compressed
        except ValueError as exc:  # also refuses zone ids (%eth0)
            raise UrlRefused("host", f"[{raw_host}] is not an IPv6 address") from exc
        if "%" in raw_host:
            raise UrlRefused("host", "IPv6 zone ids are not allowed")
    else:
        host = _normalize_name(raw_host)
    if port_text is None or port_text == "":
        port = _DEFAULT_PORTS[scheme]
    else:
        if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise UrlRefused("port", f"port {port_text!r} is not in 1..65535")
        port = int(port_text)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port, path


def _in_networks(ip: IPAddress, networks: Iterable[Network]) -> bool:
    return any(net.version == ip.version and ip in net for net in networks)


def _plain_refusal(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_CGNAT:
        return "shared address space (CGNAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def address_refusal(ip: IPAddress, allow_networks: Iterable[Network] = ()) -> str | None:
    """Why ``ip`` may not be delivered to, or None when it may (see the module docstring)."""
    networks = tuple(allow_networks)
    if _in_networks(ip, networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = None
        if ip.ipv4_mapped is not None:
            embedded = ip.ipv4_mapped
        elif ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip in _NAT64_LOCAL:
            return "local-use NAT64 prefix"
        elif ip in _TEREDO:
            return "Teredo tunnel address"
        elif ip.sixtofour is not None:
            inner = address_refusal(ip.sixtofour, networks)
            if inner is not None:
                return f"6to4 address embedding {ip.sixtofour} ({inner})"
        if embedded is not None:
            inner = address_refusal(embedded, networks)
            return None if inner is None else f"embeds {embedded} ({inner})"
    return _plain_refusal(ip)


def _localhost_allowed(networks: Iterable[Network]) -> bool:
    for net in networks:
        if isinstance(net, ipaddress.IPv4Network) and net.overlaps(_LOOPBACK_V4):
            return True
        if isinstance(net, ipaddress.IPv6Network) and _LOOPBACK_V6 in net:
            return True
    return False


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _allow_hint(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """How to allow a loopback or private address for local work (never a link-local or
    metadata address: those stay refused without a hint)."""
    if ip.is_link_local or not (ip.is_loopback or ip.is_private):
        return ""
    bits = 32 if ip.version == 4 else 128
    return f" (for local work, allow it with WEBHOOKS_ALLOW_NETWORKS={ip}/{bits} or its network)"


def check_url(url: str, *, settings: Settings | None = None, resolver: Resolver | None = None,
              local_target: tuple[str, int] | None = None) -> Target:
    """Parse ``url``, resolve its host and vet every address.

    ``resolver`` (default ``system_resolver``) maps (host, port) to IP strings; it is not called
    for IP literals. Returns a Target whose ``addresses`` are all allowed.
    ``local_target``: one loopback (address, port), a ``webhooks listen`` receiver's (see
    webhooks/listening.py): a URL whose host is exactly that IP literal and whose port is that
    port may be http and loopback; every other URL is judged as without it.
    Raises UrlRefused(rule, detail) (rules in the module docstring).
    """
    settings = settings if settings is not None else get_settings()
    resolve = resolver if resolver is not None else system_resolver
    networks = settings.allow_networks
    local = local_target is not None and ipaddress.ip_address(local_target[0]).is_loopback
    scheme, host, port, path = parse_url(url, allow_http=settings.allow_http or local)
    literal = _literal(host)
    if local and literal is not None and (literal, port) == (ipaddress.ip_address(local_target[0]), local_target[1]):  # type: ignore[index]
        networks = (*networks, ipaddress.ip_network(literal))
    elif scheme == "http" and not settings.allow_http:
        raise UrlRefused("scheme", "scheme 'http' is not allowed; use https")

    if literal is None and (host == "localhost" or host.endswith(".localhost")):
        if not _localhost_allowed(networks):
            raise UrlRefused("host", f"{host!r} is a local name (for local work, allow it with WEBHOOKS_ALLOW_NETWORKS=127.0.0.0/8,::1/128)")

    if literal is not None:
        answers: list[str] = [str(literal)]
    else:
        try:
            answers = list(resolve(host, port))
        except (OSError, UnicodeError) as exc:
            raise UrlRefused("dns", f"{host} does not resolve ({type(exc).__name__})") from exc
        if not answers:
            raise UrlRefused("dns", f"{host} resolved to no address")

    addresses: dict[str, None] = {}
    for answer in answers:
        ip = _literal(str(answer).split("%", 1)[0])
        if ip is None:
            raise UrlRefused("dns", f"{host} resolved to something that is not an IP address")
        reason = address_refusal(ip, networks)
        if reason is not None:
            where = f"{ip}" if literal is not None else f"{host} resolves to {ip}, which"
            raise UrlRefused("address", f"{where} is not allowed: {reason}{_allow_hint(ip)}")
        addresses.setdefault(str(ip), None)

    shown = f"[{host}]" if ":" in host else host
    port_part = "" if port == _DEFAULT_PORTS[scheme] else f":{port}"
    return Target(
        url=f"{scheme}://{shown}{port_part}{path}",
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        addresses=tuple(addresses),
    )
