"""The Lua behind the delivery state machine: ``.lua`` files beside this module, read once
per process, loaded into Redis once per server (EVALSHA; SCRIPT LOAD only when Redis says it
does not know the script, e.g. after a restart or on a fresh fakeredis).

Every script is prefixed with ``lua/_lib.lua`` (shared functions), so an algorithm such as
the breaker is written once and runs the same in the hot path and in the standalone scripts.
Each file's header names its KEYS and ARGV.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Sequence

from redis.exceptions import NoScriptError

__all__ = ["Script", "script", "run", "NAMES"]

NAMES = ("claim", "settle", "publish", "move_due", "wake", "resend", "dead_letter", "replay", "purge",
         "slot_acquire", "rate_reserve", "breaker_allow", "breaker_record")


@dataclass(frozen=True)
class Script:
    """One script's source (library included) and its SHA1."""

    name: str
    source: str
    sha: str

    def __call__(self, client: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run on ``client`` (a redis-py or fakeredis client; not a pipeline)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def script(name: str) -> Script:
    """The script ``name`` (a file ``lua/<name>.lua``), read once per process."""
    if name not in NAMES:
        raise KeyError(f"no script {name!r}")
    source = _read("_lib") + "\n" + _read(name)
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


def run(client: Any, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """Run script ``name`` on ``client``."""
    return script(name)(client, keys, args)
