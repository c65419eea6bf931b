"""The repository explains itself: nothing in it points outside it (a clone has no ../shared),
and the README's configuration reference names every variable the settings read."""

from __future__ import annotations

import re

from .deployment import ROOT, settings_variables

TEXT_FILES = ("*.md", "*.py", "*.html", "*.yml", "*.toml", "Makefile", "Dockerfile")


def test_nothing_points_outside_the_repository():
    found = []
    for pattern in TEXT_FILES:
        for path in ROOT.rglob(pattern):
            if any(part in (".venv", ".tools", "node_modules", ".git") for part in path.parts):
                continue
            if path.name == "test_docs.py":
                continue
            text = path.read_text(errors="replace")
            if re.search(r"\.\./shared|/work/shared|shared/(design|style)\.md", text):
                found.append(str(path.relative_to(ROOT)))
    assert found == []
    assert (ROOT / "docs" / "architecture.md").is_file() and (ROOT / "CONTRIBUTING.md").is_file()


def test_the_configuration_reference_names_every_setting():
    readme = (ROOT / "README.md").read_text()
    reference = readme[readme.index("## Configuration") :]
    missing = sorted(v for v in settings_variables() if f"`{v}`" not in reference)
    assert missing == [], f"add to the README's Configuration table: {missing}"
