"""The listener allowance is narrow: one loopback address and port, this loopback, until it expires."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from webhooks import listening
from webhooks.errors import UrlRefused
from webhooks.settings import Settings
from webhooks.subscriptions import Subscription
from webhooks.urlguard import check_url

STRICT = Settings()  # no WEBHOOKS_ALLOW_NETWORKS, no WEBHOOKS_ALLOW_HTTP


def test_the_listener_target_and_nothing_else_passes_the_guard():
    target = ("127.0.0.1", 8765)
    # Given the allowance for 127.0.0.1:8765, Then exactly that URL passes, over http or https
    assert check_url("http://127.0.0.1:8765/", settings=STRICT, local_target=target).addresses == ("127.0.0.1",)
    assert check_url("https://127.0.0.1:8765/x", settings=STRICT, local_target=target).port == 8765
    # ... and every neighbour is refused as without it
    for url in ("http://127.0.0.1:8766/", "http://127.0.0.2:8765/", "http://localhost:8765/", "http://[::1]:8765/",
                "http://127.1:8765/", "http://0x7f000001:8765/", "http://example.com:8765/", "http://10.0.0.1:8765/"):
        with pytest.raises(UrlRefused):
            check_url(url, settings=STRICT, local_target=target, resolver=lambda host, port: ["127.0.0.1"])
    # ... and without the allowance the listener's own URL is refused
    with pytest.raises(UrlRefused):
        check_url("http://127.0.0.1:8765/", settings=STRICT)


def test_an_allowance_for_a_non_loopback_address_is_ignored():
    with pytest.raises(UrlRefused):
        check_url("http://10.0.0.1:8765/", settings=STRICT, local_target=("10.0.0.1", 8765))


def _sub(**listener: object) -> Subscription:
    spec = {"address": "127.0.0.1", "port": 8765, "identity": listening.local_identity(), "expires_at": time.time() + 60}
    spec.update(listener)
    return Subscription(id="sub_x", account="acme", url="http://127.0.0.1:8765/", events=("*",), secret="s",
                        listener=spec)


@pytest.mark.skipif(listening.local_identity() is None, reason="needs Linux /proc")
def test_a_worker_honours_the_allowance_only_on_the_same_loopback_and_before_it_expires():
    assert listening.local_target(_sub()) == ("127.0.0.1", 8765)
    # another machine, another container (network namespace), or another boot
    assert listening.local_target(_sub(identity="another-boot:1:2")) is None
    assert listening.local_target(_sub(expires_at=time.time() - 1)) is None
    assert listening.local_target(_sub(address="10.0.0.1")) is None
    assert listening.local_target(_sub(port="not a port")) is None
    assert listening.local_target(replace(_sub(), listener=None)) is None
