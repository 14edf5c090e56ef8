"""The SSRF guard: hostile URLs are refused with the rule that caught them, public ones pass.

No test here touches the network: every name is answered by an injected resolver, and a name
missing from it fails the test rather than reaching the system resolver.
"""
from __future__ import annotations

import ipaddress
import socket

import pytest

from webhooks import urlguard
from webhooks.errors import UrlRefused, ValidationError
from webhooks.settings import Settings
from webhooks.urlguard import MAX_URL_LENGTH, address_refusal, check_url, parse_url

DNS = {
    "example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:4700::1111"],
    "metadata.google.internal": ["169.254.169.254"],
    "intranet.example.com": ["10.0.0.5"],
    "router.example.com": ["192.168.1.1"],
    "docker.example.com": ["172.17.0.1"],
    "loop.example.com": ["127.0.0.1"],
    "loop6.example.com": ["::1"],
    "mixed.example.com": ["93.184.216.34", "10.0.0.5"],
    "mixed6.example.com": ["2606:4700::1111", "fd00::1"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "empty.example.com": [],
    "garbage.example.com": ["not-an-ip"],
    "localhost": ["127.0.0.1"],
}


class Resolver:
    """A resolver answering from DNS; counts calls; unknown names fail like NXDOMAIN."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = DNS if table is None else table
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


STRICT = Settings()
LOCAL = Settings(allow_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))

HOSTILE: list[tuple[str, str]] = [
    # numeric forms some resolvers read as IPs
    ("https://127.1/", "host"),
    ("https://0x7f000001/", "host"),
    ("https://2130706433/", "host"),
    ("https://017700000001/", "host"),
    ("https://0177.0.0.1/", "host"),
    ("https://0x7f.0.0.1/", "host"),
    ("https://0x7f.1/", "host"),
    ("https://127.0.0.01/", "host"),
    ("https://256.0.0.1/", "host"),
    ("https://1.2.3/", "host"),
    # loopback
    ("https://127.0.0.1/", "address"),
    ("https://127.255.0.9:8443/x", "address"),
    ("https://[::1]/", "address"),
    ("https://127\u30020\u30020\u30021/", "address"),  # ideographic full stops
    # private, link-local, shared, ULA, site-local
    ("https://10.0.0.1/", "address"),
    ("https://172.16.0.1/", "address"),
    ("https://172.31.255.255/", "address"),
    ("https://192.168.0.1/", "address"),
    ("https://169.254.1.1/", "address"),
    ("https://169.254.169.254/latest/meta-data/", "address"),
    ("https://metadata.google.internal/computeMetadata/v1/", "address"),
    ("https://100.64.0.1/", "address"),
    ("https://[fd00::1]/", "address"),
    ("https://[fe80::1]/", "address"),
    ("https://[fec0::1]/", "address"),
    # multicast, unspecified, broadcast, documentation, benchmarking, reserved
    ("https://224.0.0.1/", "address"),
    ("https://[ff02::1]/", "address"),
    ("https://[::]/", "address"),
    ("https://0.0.0.0/", "address"),
    ("https://255.255.255.255/", "address"),
    ("https://192.0.2.1/", "address"),
    ("https://198.18.0.1/", "address"),
    ("https://240.0.0.1/", "address"),
    ("https://[2001:db8::1]/", "address"),
    # IPv6 forms carrying a private IPv4
    ("https://[::ffff:127.0.0.1]/", "address"),
    ("https://[::ffff:10.0.0.1]/", "address"),
    ("https://[2002:7f00:1::]/", "address"),
    ("https://[2002:a00:1::1]/", "address"),
    ("https://[64:ff9b::7f00:1]/", "address"),
    ("https://[64:ff9b::a9fe:a9fe]/", "address"),
    ("https://[64:ff9b:1::8.8.8.8]/", "address"),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "address"),  # Teredo
    # local names
    ("https://localhost/", "host"),
    ("https://localhost./", "host"),
    ("https://LOCALHOST:8443/", "host"),
    ("https://foo.localhost/", "host"),
    ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "host"),  # full-width
    # names resolving to private addresses (injected resolver)
    ("https://intranet.example.com/hook", "address"),
    ("https://router.example.com/hook", "address"),
    ("https://docker.example.com/hook", "address"),
    ("https://loop.example.com/hook", "address"),
    ("https://loop6.example.com/hook", "address"),
    ("https://mixed.example.com/hook", "address"),
    ("https://mixed6.example.com/hook", "address"),
    ("https://mapped.example.com/hook", "address"),
    # DNS failures
    ("https://nxdomain.example.com/", "dns"),
    ("https://empty.example.com/", "dns"),
    ("https://garbage.example.com/", "dns"),
    # scheme, credentials, syntax
    ("http://example.com/hook", "scheme"),
    ("ftp://example.com/hook", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com:70/", "scheme"),
    ("//example.com/hook", "scheme"),
    ("https://user:pass@example.com/hook", "credentials"),
    ("https://user@example.com/hook", "credentials"),
    ("https://example.com@127.0.0.1/", "credentials"),
    ("https://example.com/hook#frag", "fragment"),
    ("https://exa mple.com/", "syntax"),
    ("https://example.com\\@127.0.0.1/", "syntax"),
    ("https://example.com/\r\nX-Injected: 1", "syntax"),
    # host and port shapes
    ("https:///hook", "host"),
    ("https://:443/hook", "host"),
    ("https://./", "host"),
    ("https://exa%6dple.com/", "host"),
    ("https://-bad-.example.com/", "host"),
    ("https://[fe80::1%25eth0]/", "host"),
    ("https://[not-v6]/", "syntax"),
    ("https://::1/", "host"),
    ("https://example.com:0/", "port"),
    ("https://example.com:65536/", "port"),
    ("https://example.com:-1/", "port"),
    ("https://example.com:https/", "port"),
    ("https://example.com/" + "a" * MAX_URL_LENGTH, "length"),
]


@pytest.mark.parametrize(("url", "rule"), HOSTILE, ids=[u[:60] for u, _ in HOSTILE])
def test_hostile_url_is_refused_with_its_rule(url: str, rule: str) -> None:
    # Given a strict configuration and a resolver that knows the test names
    resolver = Resolver()
    # When the URL is checked / Then it is refused by the expected rule
    with pytest.raises(UrlRefused) as caught:
        check_url(url, settings=STRICT, resolver=resolver)
    assert caught.value.rule == rule, caught.value.detail
    assert isinstance(caught.value, ValidationError)


def test_the_table_is_large_enough() -> None:
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("https://8.8.8.8/hook", ("8.8.8.8",)),
        ("https://example.com/hook", ("93.184.216.34",)),
        ("https://[2606:4700::1111]/hook", ("2606:4700::1111",)),
        ("https://v6.example.com:8443/hook", ("2606:4700::1111",)),
        ("https://[::ffff:8.8.8.8]/", ("::ffff:808:808",)),
        ("https://[2002:808:808::1]/", ("2002:808:808::1",)),
        ("https://[64:ff9b::808:808]/", ("64:ff9b::808:808",)),
    ],
)
def test_public_url_is_accepted(url: str, addresses: tuple[str, ...]) -> None:
    target = check_url(url, settings=STRICT, resolver=Resolver())
    assert target.addresses == addresses


def test_target_is_normalized() -> None:
    # Given a URL with upper case, a trailing dot, the default port and a query
    target = check_url("HTTPS://Example.COM.:443/a/b?x=1&y=2", settings=STRICT, resolver=Resolver())
    # Then the target is normalized and keeps the query
    assert (target.scheme, target.host, target.port, target.path) == ("https", "example.com", 443, "/a/b?x=1&y=2")
    assert target.url == "https://example.com/a/b?x=1&y=2"
    assert target.host_header == "example.com"


def test_host_header_carries_non_default_port_and_brackets() -> None:
    target = check_url("https://[2606:4700::1111]:8443/", settings=STRICT, resolver=Resolver())
    assert target.host_header == "[2606:4700::1111]:8443"


def test_idna_host_is_encoded_before_resolving() -> None:
    resolver = Resolver({"xn--bcher-kva.example": ["93.184.216.34"]})
    target = check_url("https://Bücher.example/", settings=STRICT, resolver=resolver)
    assert target.host == "xn--bcher-kva.example"
    assert resolver.calls == [("xn--bcher-kva.example", 443)]


def test_literal_ip_is_not_resolved() -> None:
    resolver = Resolver()
    check_url("https://8.8.8.8/", settings=STRICT, resolver=resolver)
    assert resolver.calls == []


def test_every_port_in_range_is_allowed() -> None:
    for port in (1, 22, 6379, 65535):
        assert check_url(f"https://example.com:{port}/", settings=STRICT, resolver=Resolver()).port == port


def test_addresses_keep_resolver_order_without_duplicates() -> None:
    resolver = Resolver({"multi.example.com": ["93.184.216.34", "8.8.8.8", "93.184.216.34", "2606:4700::1111"]})
    target = check_url("https://multi.example.com/", settings=STRICT, resolver=resolver)
    assert target.addresses == ("93.184.216.34", "8.8.8.8", "2606:4700::1111")


def test_allow_networks_lets_loopback_through() -> None:
    # Given 127.0.0.0/8 and ::1 explicitly allowed (local work)
    # Then loopback literals and localhost pass
    assert check_url("https://127.0.0.1:8443/hook", settings=LOCAL).addresses == ("127.0.0.1",)
    assert check_url("https://[::1]/", settings=LOCAL).addresses == ("::1",)
    assert check_url("https://localhost./", settings=LOCAL, resolver=Resolver()).addresses == ("127.0.0.1",)
    # But a private address outside the allowed networks is still refused
    with pytest.raises(UrlRefused) as caught:
        check_url("https://10.0.0.1/", settings=LOCAL)
    assert caught.value.rule == "address"
    # And numeric tricks stay refused even though their value would be allowed
    with pytest.raises(UrlRefused) as caught:
        check_url("https://127.1/", settings=LOCAL)
    assert caught.value.rule == "host"


def test_allowed_network_also_covers_mapped_form() -> None:
    assert check_url("https://[::ffff:127.0.0.1]/", settings=LOCAL).addresses == ("::ffff:7f00:1",)


def test_allow_http_lets_http_through() -> None:
    settings = Settings(allow_http=True)
    target = check_url("http://example.com/hook", settings=settings, resolver=Resolver())
    assert (target.scheme, target.port) == ("http", 80)
    with pytest.raises(UrlRefused) as caught:
        check_url("ftp://example.com/", settings=settings, resolver=Resolver())
    assert caught.value.rule == "scheme"


def test_parse_url_needs_no_dns() -> None:
    assert parse_url("https://a.example:8443/p?q=1") == ("https", "a.example", 8443, "/p?q=1")
    assert parse_url("http://a.example", allow_http=True) == ("http", "a.example", 80, "/")


def test_refusal_names_rule_and_host_but_is_a_validation_error() -> None:
    with pytest.raises(UrlRefused) as caught:
        check_url("https://intranet.example.com/hook?token=s3cret", settings=STRICT, resolver=Resolver())
    err = caught.value
    assert "intranet.example.com" in err.detail and "10.0.0.5" in err.detail
    assert "s3cret" not in str(err)
    assert err.errors == {"url": [f"address: {err.detail}"]}


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("192.0.0.9", True),
        ("100.63.255.255", True),
        ("100.64.0.0", False),
        ("100.127.255.255", False),
        ("100.128.0.0", True),
        ("172.15.255.255", True),
        ("172.32.0.0", True),
        ("::ffff:8.8.8.8", True),
        ("::ffff:169.254.169.254", False),
        ("2002:0808:0808::", True),
        ("2002:c0a8:0101::", False),
        ("64:ff9b::8.8.8.8", True),
        ("64:ff9b::192.168.1.1", False),
    ],
)
def test_address_edges(address: str, allowed: bool) -> None:
    assert (address_refusal(ipaddress.ip_address(address)) is None) is allowed


def test_system_resolver_answers_loopback_without_the_network() -> None:
    # a numeric host is answered by getaddrinfo itself: no DNS traffic leaves the machine
    answers = urlguard.system_resolver("127.0.0.1", 443)
    assert answers == ["127.0.0.1"]


def test_public_names_are_exported() -> None:
    assert all(hasattr(urlguard, name) for name in urlguard.__all__)
    assert {"check_url", "parse_url", "Target", "Resolver"} <= set(urlguard.__all__)
