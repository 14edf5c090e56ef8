"""The README stays true: every setting documented with its real default, the two commands."""
from __future__ import annotations

import re
from pathlib import Path

from webhooks.settings import SETTINGS_DOC

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table_with_its_default():
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, flags=re.M))
    for name, (default, _meaning) in SETTINGS_DOC.items():
        assert name in rows, f"{name} is missing from the README settings table"
        shown = rows[name].strip()
        assert shown == (f"`{default}`" if default else "(empty)"), f"{name}: README says {shown}, code says {default!r}"
    assert set(rows) <= set(SETTINGS_DOC), f"README documents settings the code lacks: {set(rows) - set(SETTINGS_DOC)}"


def test_the_readme_shows_the_two_commands():
    assert "make demo" in README and "make test" in README
