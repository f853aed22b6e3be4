"""Template mistakes that render without an error but show on the page.

- Django's ``{# ... #}`` comment is one line only: one spread over several lines is printed as text
  (the dashboard's charts once showed theirs). Longer comments use ``{% comment %}``.
- Times go through the one format (``|when``, ``|ago``, ``|when_text`` of the console tags): a
  ``|date``/``|time`` filter or ``timesince`` would bring back a second format and ignore the viewer's zone.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.settings_helpers import ROOT

TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
# Django's own admin templates we override keep Django's formats.
CONSOLE = [t for t in TEMPLATES if "admin" not in t.relative_to(ROOT / "templates").parts]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("template", TEMPLATES, ids=_name)
def test_no_comment_spreads_over_lines(template: Path) -> None:
    for number, line in enumerate(template.read_text(encoding="utf-8").splitlines(), 1):
        opened = line.rfind("{#")
        where = f"{_name(template)}:{number}"
        assert opened == -1 or "#}" in line[opened:], f"{where}: a {{# comment #}} must end on its line"


@pytest.mark.parametrize("template", CONSOLE, ids=_name)
def test_times_use_the_one_format(template: Path) -> None:
    text = template.read_text(encoding="utf-8")
    found = re.findall(r"\|(?:date|time|timesince|timeuntil)\b", text)
    assert not found, f"{_name(template)} formats a time itself ({found[0]}): use |when or |ago"


def test_the_checks_see_the_templates() -> None:
    assert len(CONSOLE) > 30 and any(t.name == "dashboard.html" for t in CONSOLE)
