"""``python -m bench`` (``make bench``): every benchmark's ``main()`` in turn, with its defaults.

Chaos (``python -m bench.chaos``, ``make chaos``) is a soak test, not a figure: it is left out.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

SKIP = {"common", "chaos", "__main__"}


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name not in SKIP)
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"== bench.{name}", flush=True)
        module.main([])
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
