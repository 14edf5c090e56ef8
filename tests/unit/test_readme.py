"""The docs stay true: the settings table is the one generated from the settings definitions
(every setting with its real default and meaning), and the README shows the two commands."""
from __future__ import annotations

import re
from pathlib import Path

from webhooks.settings import SETTINGS_DOC
from webhooks.settingsdoc import END, START, markdown_table, replace_table, table_in

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _tables() -> dict[str, str]:
    found = {}
    for path in DOCS:
        table = table_in(path.read_text(encoding="utf-8"))
        if table is not None:
            found[str(path.relative_to(ROOT))] = table
    return found


def test_the_documented_settings_table_is_the_generated_one():
    tables = _tables()
    assert tables, f"no settings table between {START!r} and {END!r} in README.md or docs/"
    for where, table in tables.items():
        assert table == markdown_table(), f"{where}: the settings table differs from the code; run python -m webhooks.settingsdoc --write {where}"


def test_every_setting_is_in_the_table_with_its_default():
    (table, *_) = _tables().values()
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", table, flags=re.M))
    for name, (default, _meaning) in SETTINGS_DOC.items():
        assert name in rows, f"{name} is missing from the settings table"
        shown = rows[name].strip()
        assert shown == (f"`{default}`" if default else "(empty)"), f"{name}: the table says {shown}, code says {default!r}"
    assert set(rows) <= set(SETTINGS_DOC), f"the table documents settings the code lacks: {set(rows) - set(SETTINGS_DOC)}"


def test_a_changed_default_or_meaning_makes_the_table_differ(monkeypatch):
    # Given the table as documented, When a setting's default changes in the code
    documented = next(iter(_tables().values()))
    monkeypatch.setitem(SETTINGS_DOC, "WEBHOOKS_TOTAL_TIMEOUT_S", ("20", SETTINGS_DOC["WEBHOOKS_TOTAL_TIMEOUT_S"][1]))
    # Then the generated table no longer equals it, and --write puts the new one between the markers
    assert markdown_table() != documented
    assert "| `WEBHOOKS_TOTAL_TIMEOUT_S` | `20` |" in replace_table(f"a\n{START}\nold\n{END}\nb\n")


def test_the_readme_shows_the_two_commands():
    assert "make demo" in README and "make test" in README
