"""Run the ``webhooks`` CLI of this checkout in a subprocess, with a given environment."""
from __future__ import annotations

import os
import subprocess
import sys

from .worker import ROOT

__all__ = ["run_cli"]


def run_cli(env: dict[str, str], *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m webhooks ARGS`` with ``env`` on top of ours; output captured as text."""
    return subprocess.run([sys.executable, "-m", "webhooks", *args], cwd=ROOT,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=timeout_s)
