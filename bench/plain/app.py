"""The plain Celery webhook task a typical user writes: the yardstick ``bench.sidebyside`` runs.

    celery -A bench.plain.app worker -P threads -c 32 -Q plain -l INFO

What it does is what most hand-written webhook senders do, and nothing more: sign the body
(Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64
HMAC-SHA256>``), ``requests.post`` it on a module-level ``requests.Session`` trusting the
bench's CA, with a timeout, raise for a non-2xx answer and let Celery retry with backoff;
``acks_late`` and a prefetch of one, as the Celery docs advise for tasks that must not be
lost. The payload travels in the task arguments (the usual habit, and part of what the
comparison measures); the subscription's secret is looked up by id in a dict loaded once per
process (a user's cached settings: cheaper than the database query most users make).

No attempt log, no limits, no breaker, no dead letters, no URL guard, no ledger: the bench
compares what those cost against this floor.

Configured from the environment (set by ``bench.sidebyside``):
``BENCH_PLAIN_BROKER`` (Redis URL), ``BENCH_PLAIN_CA`` (CA bundle, PEM) and
``BENCH_PLAIN_SECRETS`` (a JSON file ``{secret_id: "whsec_..."}``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

import requests
from celery import Celery
from requests.adapters import HTTPAdapter

__all__ = ["app", "send_webhook", "QUEUE"]

QUEUE = "plain"

app = Celery("plain", broker=os.environ.get("BENCH_PLAIN_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)

CA_BUNDLE = os.environ.get("BENCH_PLAIN_CA") or True


def _load_secrets() -> dict[str, str]:
    path = os.environ.get("BENCH_PLAIN_SECRETS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return dict(json.load(f))


SECRETS = _load_secrets()

session = requests.Session()
# requests keeps 10 connections per host by default; with 32 threads posting to one host the
# rest are opened, used once and discarded with a "Connection pool is full" warning. A user
# who runs -c 32 sees that warning and raises the pool: we give the plain task that fix, so
# it is not a straw man paying a TLS handshake per request.
session.mount("https://", HTTPAdapter(pool_connections=16, pool_maxsize=32))


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the whsec_ secret's key."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@app.task(
    name="plain.send_webhook",
    acks_late=True,
    autoretry_for=(requests.RequestException,),
    retry_backoff=True,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
)
def send_webhook(url: str, secret_id: str, payload: dict[str, Any]) -> int:
    """POST ``payload`` signed to ``url``; raise (and so retry) on a non-2xx answer."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    msg_id = payload["id"]
    timestamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign(SECRETS[secret_id], msg_id, timestamp, body),
    }
    response = session.post(url, data=body, headers=headers, timeout=(5, 15), verify=CA_BUNDLE)
    response.raise_for_status()
    return response.status_code
