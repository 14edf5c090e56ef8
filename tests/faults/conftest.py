"""Fault tests: each builds its own stack (own redis-server, workers, HTTPS endpoint) and
never touches the shared Redis on 6379. A summary of every run's tally is printed at the end."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.faults.support import Stack, Tally

_TALLIES: list[Tally] = []


@pytest.fixture
def make_stack(tmp_path: Path, test_ca: Any, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """``make_stack(env={...}, redis_server=None)`` -> an entered Stack, closed (every process killed) at teardown."""
    stacks: list[Stack] = []

    def make(env: dict[str, str] | None = None, redis_server: Any = None) -> Stack:
        s = Stack(tmp_path / f"stack{len(stacks)}", test_ca, env, name=request.node.name.removeprefix("test_"),
                  redis_server=redis_server)
        stacks.append(s)
        return s.__enter__()

    try:
        yield make
    finally:
        for s in stacks:
            s.close()


@pytest.fixture
def account() -> str:
    return f"fault-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def report() -> Callable[[Tally], Tally]:
    """Keep a tally for the end-of-run summary (published / delivered / duplicates / dead / lost)."""

    def keep(t: Tally) -> Tally:
        _TALLIES.append(t)
        return t

    return keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TALLIES:
        terminalreporter.section("faults: what was published and what arrived")
        for t in _TALLIES:
            terminalreporter.write_line(t.row())
