"""All settings, read once from the environment, validated, each documented here once.

``get_settings()`` returns the process-wide value; ``reload_settings()`` re-reads the
environment (tests and the CLI use it after changing variables).
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping

from .errors import ConfigurationError
from . import sentinel
from .recovery import check_recovery_fits

__all__ = ["Settings", "get_settings", "reload_settings", "set_source", "SETTINGS_DOC"]

# name -> (default as written in the environment, one-line meaning)
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "WEBHOOKS_REDIS_URL": ("redis://127.0.0.1:6379/0", "Redis used as broker and state store: redis://, rediss://, or through Sentinel sentinel://[:password@]host:26379,host2:26379/0?master=NAME (docs/reliability.md)."),
    "WEBHOOKS_ALLOW_NETWORKS": ("", "Comma-separated CIDRs that may be delivered to although not public (e.g. 127.0.0.0/8 for local work)."),
    "WEBHOOKS_CA_BUNDLE": ("", "Extra CA file (PEM) to trust when delivering, on top of the system store."),
    "WEBHOOKS_ALLOW_HTTP": ("0", "Allow http:// endpoint URLs (development only)."),
    "SENTRY_DSN": ("", "Send errors and exhausted deliveries to Sentry (no payloads, secrets or trace headers)."),
    "WEBHOOKS_MAX_PAYLOAD_BYTES": ("262144", "Largest serialized event accepted by publish()."),
    "WEBHOOKS_PUBLISH_TIMEOUT_S": ("5", "Bound on how long publish() may wait for Redis before PublishError."),
    "WEBHOOKS_CONNECT_TIMEOUT_S": ("5", "TCP+TLS connect timeout of one delivery attempt."),
    "WEBHOOKS_TOTAL_TIMEOUT_S": ("15", "Total deadline of one delivery attempt, whatever the server drips."),
    "WEBHOOKS_MAX_RESPONSE_BYTES": ("65536", "Response body bytes read at most; the rest is never read."),
    "WEBHOOKS_LOG_RESPONSE_BYTES": ("2048", "Response body bytes kept in the attempt log."),
    "WEBHOOKS_RETRY_SCHEDULE": ("5,300,1800,7200,18000,36000,50400,72000,86400", "Delays before each retry (attempt 2, 3, ...), seconds or with s/m/h/d; the first attempt is immediate; the list's length is the number of retries (default: 5s,5m,30m,2h,5h,10h,14h,20h,24h, about 3 days)."),
    "WEBHOOKS_RETRY_JITTER": ("0.2", "Retry delays are stretched by a random 0..this fraction (never shortened)."),
    "WEBHOOKS_VISIBILITY_TIMEOUT_S": ("40", "A message a worker took is handed to another worker when its holder's heartbeat (every fifth of this) has been silent this long: a killed worker's deliveries come back within this plus 5 s."),
    "WEBHOOKS_MAX_COUNTDOWN_S": ("600", "Longest retry delay held by Celery; longer ones are parked in Redis."),
    "WEBHOOKS_ATTEMPT_RETENTION_S": ("604800", "How long the attempt log and delivery records are kept."),
    "WEBHOOKS_ATTEMPTS_PER_DELIVERY": ("50", "Attempt log entries kept per delivery (newest)."),
    "WEBHOOKS_DEAD_LETTER_RETENTION_S": ("2592000", "How long a dead letter is kept before it expires."),
    "WEBHOOKS_EGRESS_PROXY": ("", "Explicit egress proxy URL for deliveries; proxy environment variables are ignored."),
    "WEBHOOKS_ENCRYPTION_KEY": ("", "Fernet key(s) encrypting subscription secrets at rest, comma-separated, newest first (make one with `webhooks keygen`); required to store a secret unless WEBHOOKS_ALLOW_PLAINTEXT_SECRETS=1."),
    "WEBHOOKS_ALLOW_PLAINTEXT_SECRETS": ("0", "Development only: without WEBHOOKS_ENCRYPTION_KEY, store new signing secrets in plain text instead of refusing them."),
    "WEBHOOKS_ENDPOINT_CONCURRENCY": ("4", "Deliveries in flight at most per endpoint (subscription URL)."),
    "WEBHOOKS_BREAKER_MIN_REQUESTS": ("10", "Circuit breaker: attempts within the window before it may open."),
    "WEBHOOKS_BREAKER_FAILURE_RATIO": ("0.7", "Circuit breaker: opens when at least this fraction of those attempts failed."),
    "WEBHOOKS_BREAKER_WINDOW_S": ("300", "Circuit breaker: the window over which attempts are counted."),
    "WEBHOOKS_BREAKER_COOLDOWN_S": ("30", "Circuit breaker: how long it stays open before one probe may go."),
    "WEBHOOKS_RECONCILE_AFTER_S": ("", "A delivery that shows no progress this long, and whose message is in no queue, is re-enqueued (empty = visibility timeout + 10 s)."),
    "WEBHOOKS_DISABLE_AFTER_S": ("432000", "Disable a subscription whose endpoint has failed continuously this long (5 days)."),
    "WEBHOOKS_OPS_URL": ("", "Operator's URL that receives endpoint.failing / endpoint.recovered / endpoint.disabled webhooks."),
    "WEBHOOKS_OPS_SECRET": ("", "whsec_ secret signing those operational webhooks."),
    "WEBHOOKS_OUTBOX": ("", "Path of the producer outbox (SQLite spool publish() writes to when Redis cannot be reached); empty = off."),
    "WEBHOOKS_OUTBOX_MAX_EVENTS": ("100000", "Events the outbox holds at most; past that publish() raises PublishError."),
    "WEBHOOKS_WORKER_CONCURRENCY": ("32", "Delivery threads per worker process (`celery -A workers worker` uses a threads pool; `-c` overrides)."),
    "WEBHOOKS_WORKER_EVENTS": ("0", "Workers send task events, which Flower needs to list tasks (costs about 20 % throughput)."),
    "WEBHOOKS_HEALTH_DIR": ("", "Directory of the liveness files workers and beat refresh (empty = the system temp directory)."),
    "WEBHOOKS_METRICS_PORT": ("", "Port (or range like 9100-9103: the first free one) on which each worker serves Prometheus /metrics; empty = off."),
    "WEBHOOKS_METRICS_ADDRESS": ("127.0.0.1", "Address the worker's /metrics listens on (0.0.0.0 inside a container)."),
    "WEBHOOKS_METRICS_PER_ACCOUNT": ("0", "Add an account label to the worker metrics and the dead-letter gauge (one series per account: mind the cardinality)."),
}


def _bool(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in raw.split(","):
        part = part.strip()
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError as exc:
                raise ConfigurationError(f"WEBHOOKS_ALLOW_NETWORKS: {part!r} is not a CIDR") from exc
    return tuple(nets)


def _ports(raw: str) -> tuple[int, ...]:
    """'' -> (), '9100' -> (9100,), '9100-9103' -> (9100, 9101, 9102, 9103)."""
    raw = raw.strip()
    if not raw:
        return ()
    first, _, last = raw.partition("-")
    lo, hi = int(first), int(last or first)
    if hi < lo or hi - lo > 1000:
        raise ValueError("a range is low-high, at most 1000 ports")
    return tuple(range(lo, hi + 1))


def _schedule(raw: str) -> tuple[float, ...]:
    from .errors import ValidationError
    from .policy import RetrySchedule

    try:
        return RetrySchedule.parse(raw).delays_s
    except ValidationError as exc:
        raise ConfigurationError(f"WEBHOOKS_RETRY_SCHEDULE={raw[:200]!r} is an {exc}") from None


_REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")
_REDIS_URL_FORM = "redis://[:password@]host:port/db, rediss://…, unix:///path.sock or sentinel://host:port"


def _check_redis_url(url: str) -> None:
    """ConfigurationError naming WEBHOOKS_REDIS_URL, in one sentence that never repeats the URL
    (it may hold a password), when ``url`` cannot be a Redis URL. Connects to nothing."""
    import re
    from urllib.parse import urlsplit

    import redis.connection

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _REDIS_SCHEMES:
        raise ConfigurationError(f"WEBHOOKS_REDIS_URL is not a Redis URL: expected {_REDIS_URL_FORM}")
    if scheme == "sentinel":
        return  # a list of sentinels (kombu's form); checked where it is used
    try:
        redis.connection.parse_url(url)
        parts = urlsplit(url)
        password = parts.password
    except (ValueError, TypeError) as exc:
        reason = str(exc)
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password and password in reason:
            reason = "it cannot be parsed"
        raise ConfigurationError(f"WEBHOOKS_REDIS_URL is not a valid Redis URL ({reason.rstrip('.')}): expected {_REDIS_URL_FORM}") from None
    if scheme != "unix" and parts.path not in ("", "/") and not re.fullmatch(r"/[0-9]{1,5}", parts.path):
        raise ConfigurationError(f"WEBHOOKS_REDIS_URL names a database that is not a number: expected {_REDIS_URL_FORM}")
    del password


@dataclass(frozen=True)
class Settings:
    """Validated settings. Units are in the names."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    ca_bundle: str | None = None
    allow_http: bool = False
    sentry_dsn: str | None = None
    max_payload_bytes: int = 262144
    publish_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    total_timeout_s: float = 15.0
    max_response_bytes: int = 65536
    log_response_bytes: int = 2048
    retry_schedule_s: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    retry_jitter: float = 0.2
    visibility_timeout_s: float = 40.0
    max_countdown_s: float = 600.0
    attempt_retention_s: int = 604800
    attempts_per_delivery: int = 50
    dead_letter_retention_s: int = 2592000
    egress_proxy: str | None = None
    encryption_key: str | None = field(default=None, repr=False)
    allow_plaintext_secrets: bool = False
    endpoint_concurrency: int = 4
    breaker_min_requests: int = 10
    breaker_failure_ratio: float = 0.7
    breaker_window_s: float = 300.0
    breaker_cooldown_s: float = 30.0
    disable_after_s: float = 432000.0
    reconcile_after_s: float | None = None
    ops_url: str | None = None
    ops_secret: str | None = field(default=None, repr=False)
    outbox_path: str | None = None
    outbox_max_events: int = 100000
    worker_concurrency: int = 32
    worker_events: bool = False
    health_dir: str | None = None
    metrics_ports: tuple[int, ...] = ()
    metrics_address: str = "127.0.0.1"
    metrics_per_account: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigurationError when the values cannot work together."""
        _check_redis_url(self.redis_url)
        if self.encryption_key:
            from .secretbox import check_keys

            check_keys(self.encryption_key)
        if self.max_payload_bytes <= 0:
            raise ConfigurationError("WEBHOOKS_MAX_PAYLOAD_BYTES must be positive")
        if self.publish_timeout_s <= 0 or self.connect_timeout_s <= 0 or self.total_timeout_s <= 0:
            raise ConfigurationError("timeouts must be positive")
        if self.connect_timeout_s > self.total_timeout_s:
            raise ConfigurationError("WEBHOOKS_CONNECT_TIMEOUT_S must not exceed WEBHOOKS_TOTAL_TIMEOUT_S")
        if any(d < 0 for d in self.retry_schedule_s):
            raise ConfigurationError("WEBHOOKS_RETRY_SCHEDULE: delays must be >= 0")
        if not 0 <= self.retry_jitter <= 1:
            raise ConfigurationError("WEBHOOKS_RETRY_JITTER must be between 0 and 1")
        if sentinel.is_sentinel(self.redis_url):
            sentinel.parse(self.redis_url)  # names the primary and at least one sentinel
        # Countdowns may outlive the visibility timeout: the worker's heartbeat keeps them.
        check_recovery_fits(self.visibility_timeout_s, attempt_timeout_s=self.total_timeout_s)
        if self.reconcile_after_s is not None and self.reconcile_after_s <= 0:
            raise ConfigurationError("WEBHOOKS_RECONCILE_AFTER_S must be positive")
        if self.endpoint_concurrency < 1:
            raise ConfigurationError("WEBHOOKS_ENDPOINT_CONCURRENCY must be at least 1")
        if self.breaker_min_requests < 1:
            raise ConfigurationError("WEBHOOKS_BREAKER_MIN_REQUESTS must be at least 1")
        if not 0 < self.breaker_failure_ratio <= 1:
            raise ConfigurationError("WEBHOOKS_BREAKER_FAILURE_RATIO must be in (0, 1]")
        if self.breaker_window_s <= 0 or self.breaker_cooldown_s <= 0:
            raise ConfigurationError("WEBHOOKS_BREAKER_WINDOW_S and WEBHOOKS_BREAKER_COOLDOWN_S must be positive")
        if self.log_response_bytes > self.max_response_bytes:
            raise ConfigurationError("WEBHOOKS_LOG_RESPONSE_BYTES must not exceed WEBHOOKS_MAX_RESPONSE_BYTES")
        if self.outbox_max_events < 1:
            raise ConfigurationError("WEBHOOKS_OUTBOX_MAX_EVENTS must be at least 1")
        if self.worker_concurrency < 1:
            raise ConfigurationError("WEBHOOKS_WORKER_CONCURRENCY must be at least 1")
        if any(not 0 < p < 65536 for p in self.metrics_ports):
            raise ConfigurationError("WEBHOOKS_METRICS_PORT must be a port (1-65535) or a range of them")

    @property
    def progress_deadline_s(self) -> float:
        """How long a delivery may show no progress before the reconciler looks for its message."""
        if self.reconcile_after_s is not None:
            return self.reconcile_after_s
        # Past the visibility timeout, a message still held is kept fresh by its worker's
        # heartbeat (so it is "in transit"); one lost by kombu (#305) is found 10 s later.
        return self.visibility_timeout_s + 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ``env`` (default ``os.environ``); raise ConfigurationError."""
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return env.get(name, SETTINGS_DOC[name][0])

        def conv(name: str, fn: Callable[[str], object]) -> object:
            raw = get(name)
            try:
                return fn(raw)
            except ConfigurationError:
                raise
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"{name}={raw!r} is not valid: {exc}") from exc

        return cls(
            redis_url=get("WEBHOOKS_REDIS_URL"),
            allow_networks=conv("WEBHOOKS_ALLOW_NETWORKS", _networks),  # type: ignore[arg-type]
            ca_bundle=get("WEBHOOKS_CA_BUNDLE") or None,
            allow_http=_bool(get("WEBHOOKS_ALLOW_HTTP")),
            sentry_dsn=get("SENTRY_DSN") or None,
            max_payload_bytes=conv("WEBHOOKS_MAX_PAYLOAD_BYTES", int),  # type: ignore[arg-type]
            publish_timeout_s=conv("WEBHOOKS_PUBLISH_TIMEOUT_S", float),  # type: ignore[arg-type]
            connect_timeout_s=conv("WEBHOOKS_CONNECT_TIMEOUT_S", float),  # type: ignore[arg-type]
            total_timeout_s=conv("WEBHOOKS_TOTAL_TIMEOUT_S", float),  # type: ignore[arg-type]
            max_response_bytes=conv("WEBHOOKS_MAX_RESPONSE_BYTES", int),  # type: ignore[arg-type]
            log_response_bytes=conv("WEBHOOKS_LOG_RESPONSE_BYTES", int),  # type: ignore[arg-type]
            retry_schedule_s=conv("WEBHOOKS_RETRY_SCHEDULE", _schedule),  # type: ignore[arg-type]
            retry_jitter=conv("WEBHOOKS_RETRY_JITTER", float),  # type: ignore[arg-type]
            visibility_timeout_s=conv("WEBHOOKS_VISIBILITY_TIMEOUT_S", float),  # type: ignore[arg-type]
            max_countdown_s=conv("WEBHOOKS_MAX_COUNTDOWN_S", float),  # type: ignore[arg-type]
            attempt_retention_s=conv("WEBHOOKS_ATTEMPT_RETENTION_S", int),  # type: ignore[arg-type]
            attempts_per_delivery=conv("WEBHOOKS_ATTEMPTS_PER_DELIVERY", int),  # type: ignore[arg-type]
            dead_letter_retention_s=conv("WEBHOOKS_DEAD_LETTER_RETENTION_S", int),  # type: ignore[arg-type]
            egress_proxy=get("WEBHOOKS_EGRESS_PROXY") or None,
            encryption_key=get("WEBHOOKS_ENCRYPTION_KEY") or None,
            allow_plaintext_secrets=_bool(get("WEBHOOKS_ALLOW_PLAINTEXT_SECRETS")),
            endpoint_concurrency=conv("WEBHOOKS_ENDPOINT_CONCURRENCY", int),  # type: ignore[arg-type]
            breaker_min_requests=conv("WEBHOOKS_BREAKER_MIN_REQUESTS", int),  # type: ignore[arg-type]
            breaker_failure_ratio=conv("WEBHOOKS_BREAKER_FAILURE_RATIO", float),  # type: ignore[arg-type]
            breaker_window_s=conv("WEBHOOKS_BREAKER_WINDOW_S", float),  # type: ignore[arg-type]
            breaker_cooldown_s=conv("WEBHOOKS_BREAKER_COOLDOWN_S", float),  # type: ignore[arg-type]
            disable_after_s=conv("WEBHOOKS_DISABLE_AFTER_S", float),  # type: ignore[arg-type]
            reconcile_after_s=conv("WEBHOOKS_RECONCILE_AFTER_S", lambda raw: float(raw) if raw.strip() else None),  # type: ignore[arg-type]
            ops_url=get("WEBHOOKS_OPS_URL") or None,
            ops_secret=get("WEBHOOKS_OPS_SECRET") or None,
            outbox_path=get("WEBHOOKS_OUTBOX") or None,
            outbox_max_events=conv("WEBHOOKS_OUTBOX_MAX_EVENTS", int),  # type: ignore[arg-type]
            worker_concurrency=conv("WEBHOOKS_WORKER_CONCURRENCY", int),  # type: ignore[arg-type]
            worker_events=_bool(get("WEBHOOKS_WORKER_EVENTS")),
            health_dir=get("WEBHOOKS_HEALTH_DIR") or None,
            metrics_ports=conv("WEBHOOKS_METRICS_PORT", _ports),  # type: ignore[arg-type]
            metrics_address=get("WEBHOOKS_METRICS_ADDRESS").strip() or "127.0.0.1",
            metrics_per_account=_bool(get("WEBHOOKS_METRICS_PER_ACCOUNT")),
        )


# Where settings come from when not the environment alone (webhooks.contrib.django installs
# Django's settings.WEBHOOKS here); a callable returning the mapping Settings.from_env reads.
_source: Callable[[], Mapping[str, str]] | None = None


def set_source(source: Callable[[], Mapping[str, str]] | None) -> None:
    """Read settings from ``source()`` instead of ``os.environ`` (None: the environment again);
    the same names, defaults and validation apply. Forgets the cached settings."""
    global _source
    _source = source
    reload_settings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment (or the installed source) on first use."""
    return Settings.from_env(_source() if _source is not None else None)


def reload_settings() -> Settings:
    """Forget the cached settings and read the environment again."""
    get_settings.cache_clear()
    from . import connection  # local: connection caches clients built from settings

    connection.reset()
    return get_settings()
