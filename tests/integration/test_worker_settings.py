"""A real ``celery -A workers worker`` with an invalid setting: one sentence naming the
setting on stderr, exit 2, no traceback (issue 10 item 7)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.worker import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("WEBHOOKS_REDIS_URL", "redis://:hunter2@127.0.0.1:63x9/0", "WEBHOOKS_REDIS_URL is not a valid Redis URL"),
        ("WEBHOOKS_TOTAL_TIMEOUT_S", "fifteen", "WEBHOOKS_TOTAL_TIMEOUT_S='fifteen' is not valid"),
        ("WEBHOOKS_RETRY_SCHEDULE", "5s,10x", "step 2 '10x' is not a delay"),
        ("WEBHOOKS_ENCRYPTION_KEY", "hunter2", "WEBHOOKS_ENCRYPTION_KEY is not a valid Fernet key"),
        ("WEBHOOKS_ALLOW_NETWORKS", "10.0.0.0/33", "WEBHOOKS_ALLOW_NETWORKS: '10.0.0.0/33' is not a CIDR"),
    ],
)
def test_a_worker_with_an_invalid_setting_says_which_in_one_sentence(name: str, value: str, says: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOKS_")}
    env.update({name: value, "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "workers", "worker", "-P", "threads", "-c", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and says in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr + done.stdout
    assert "hunter2" not in done.stderr
