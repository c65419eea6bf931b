"""The dependency picture of the README holds: the ground floor (`core`) imports no app, and the
apps import downwards only (usage never imports billing, nothing imports gateway)."""

import ast
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
