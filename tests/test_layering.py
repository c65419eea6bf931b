"""The dependency picture of the README holds: the ground floor (`core`) imports no app, and the
apps import downwards only (usage never imports billing, nothing imports gateway)."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = {
    "console", "orgs", "members", "apikeys", "usage", "billing", "gateway", "adminapi", "audit",
    "core",
}  # fmt: skip
# The README's picture: each app's direct dependencies. An app may import what they import too.
PICTURE = {
    "core": set(),
    "audit": {"core"},
    "orgs": {"audit", "core"},
    "members": {"orgs", "audit", "core"},
    "apikeys": {"members", "orgs", "audit", "core"},
    "usage": {"apikeys", "orgs", "audit", "core"},
    "billing": {"usage", "members", "orgs", "audit", "core"},
    "gateway": {"apikeys", "billing", "usage", "core"},
    # The Admin API: Django views over the apps' services and selectors (not the gateway).
    "adminapi": {"billing", "usage", "apikeys", "members", "orgs", "audit", "core"},
}


def below(app: str) -> set[str]:
    found: set[str] = set()
    todo = list(PICTURE[app])
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(PICTURE[name])
    return found


ALLOWED = {app: below(app) for app in PICTURE}


def imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in APPS)
    return found


def test_apps_import_downwards_only():
    wrong = []
    for app, allowed in ALLOWED.items():
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for imported in imported_apps(path) - allowed - {app}:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert wrong == []


# Loaded only where they are used (decision 0019): the SDK for the upstream's "Test connection"
# button (~80 MB, seconds of import), httpx for the usage import, fakeredis without a REDIS_URL.
LAZY = ("anthropic", "httpx", "fakeredis")


def test_a_web_process_loads_no_sdk_it_does_not_use():
    """A web process (console.asgi: it loads every URL and view at start, so that its first page
    does not wait for them) has not imported the heavy modules only a few paths need."""
    probe = (
        "import sys, console.asgi; "
        "print('views-loaded' if {'usage.views', 'billing.views', 'apikeys.views'} "
        "<= set(sys.modules) else 'views-not-loaded'); "
        f"print(' '.join(sorted(m for m in {LAZY!r} if m in sys.modules)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings"}
    env.pop("WEB_RUNS_BACKGROUND_WORK", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["views-loaded"]


def test_templates_render_forms_the_consoles_way():
    """Forms go through partials/form_fields.html (CONTRIBUTING.md), not Django's as_p/as_table/
    as_ul, whose labels, help and errors look unlike the rest of the console."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "templates").rglob("*.html")
        if re.search(r"\.as_(p|table|ul)\b", path.read_text())
    ]
    assert offenders == []
