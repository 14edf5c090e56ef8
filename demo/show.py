"""Terminal output of the demo: numbered steps, indented details, shortened bodies."""
from __future__ import annotations

import sys

__all__ = ["step", "say", "detail", "shorten", "use_safe_stdout", "OK"]

OK = "✓"


def _out(text: str) -> None:
    print(text, flush=True)


def step(number: int, title: str) -> None:
    """A numbered step heading."""
    _out("")
    _out(f"── {number}. {title} " + "─" * max(3, 72 - len(title)))


def say(text: str) -> None:
    """A line of the step."""
    _out(f"  {text}")


def detail(text: str, indent: int = 6) -> None:
    """Indented lines (command output, bodies)."""
    for line in text.rstrip("\n").splitlines() or [""]:
        _out((" " * indent + line).rstrip())


def shorten(text: str, limit: int = 160) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def use_safe_stdout() -> None:
    """Never die on a terminal that cannot print ✓ or ─."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")
