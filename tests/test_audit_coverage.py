"""The audit log covers what the console changes: every action in the registry is produced by
some test of the suite, every action reads as a sentence, and every write service records an
event (or says, below, why it has none)."""

import ast
import inspect
from pathlib import Path

from audit import registry

from .audit_coverage import PRODUCED

ROOT = Path(__file__).resolve().parent.parent
SERVICE_MODULES = sorted(ROOT.glob("*/services.py"))
# Public service functions that change nothing an audit log is about, and why.
NOT_AUDITED = {
    "apikeys.services.flush_last_used": "moves last-used stamps from Redis: bookkeeping",
    "apikeys.services.send_key_notice": "an email about a key (the claim row is bookkeeping)",
    "apikeys.services.send_due_notices": "sends the emails of send_key_notice",
    "apikeys.services.note_admin_key_used": "stamps last_used_at: bookkeeping",
    "audit.services.record_event": "it is the recording",
}


def test_every_registered_action_is_produced_by_some_test():
    """Runs last, on the whole suite only (tests/conftest.py): an action no test produces is
    either dead or untested."""
    never = sorted(set(registry.ACTIONS) - PRODUCED)
    assert not never, f"Audit actions no test produces: {never}"


def test_every_action_has_a_sentence():
    missing = sorted(
        a for a in registry.ACTIONS if a not in registry.SENTENCES and a not in registry.RENDERERS
    )
    assert not missing, f"Add these to audit.registry.SENTENCES: {missing}"
    unknown = sorted(set(registry.SENTENCES) - set(registry.ACTIONS))
    assert not unknown, f"Sentences for unregistered actions: {unknown}"


WRITES = {"save", "update", "create", "delete", "bulk_create", "get_or_create", "update_or_create"}


def _public_functions(path: Path) -> tuple[str, dict[str, ast.FunctionDef]]:
    tree = ast.parse(path.read_text())
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return module, {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _calls(node) -> set[str]:
    return {
        (call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", ""))
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
    }


def _writes(node: ast.FunctionDef) -> bool:
    """A write service: in a transaction (decorated or inside), or saving models itself."""
    atomic = any("atomic" in ast.unparse(decorator) for decorator in node.decorator_list)
    return atomic or "atomic" in _calls(node) or bool(_calls(node) & WRITES)


def _records_an_event(functions: dict[str, ast.FunctionDef], name: str, seen=()) -> bool:
    calls = _calls(functions[name])
    return "record_event" in calls or any(
        _records_an_event(functions, callee, (*seen, name))
        for callee in calls
        if callee in functions and callee not in seen and callee != name
    )


def test_every_write_service_records_an_audit_event():
    """Each public write function of an app's services.py records an event, directly or
    through functions of its module that do, unless NOT_AUDITED says why not."""
    silent = []
    for path in SERVICE_MODULES:
        module, functions = _public_functions(path)
        for name, node in functions.items():
            qualified = f"{module}.{name}"
            if name.startswith("_") or qualified in NOT_AUDITED or not _writes(node):
                continue
            if not _records_an_event(functions, name):
                silent.append(qualified)
    assert not silent, (
        f"Write services that record no audit event: {silent}. Record one, or say why not in "
        "NOT_AUDITED."
    )


def test_not_audited_names_still_exist():
    stale = []
    for qualified in NOT_AUDITED:
        module, _, name = qualified.rpartition(".")
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists() or name not in _public_functions(path)[1]:
            stale.append(qualified)
    assert not stale, f"NOT_AUDITED names functions that are gone: {stale}"


def test_the_registry_says_how_to_add_an_action():
    doc = inspect.getdoc(registry)
    assert "To add an action" in doc and "SENTENCES" in doc and "ALWAYS_RECORDED" in doc
