"""The console's URLs, enumerated from the resolver: the access matrix and the list-page tests
cover every view by construction, not from a hand-kept list."""

import re

from django.urls import URLPattern, URLResolver, get_resolver

# Third-party URLs, with their own rules: allauth's sign-in pages and the Django admin.
THIRD_PARTY_MODULES = ("allauth.",)
THIRD_PARTY_NAMESPACES = ("admin:",)
PARAM = re.compile(r"<(?:\w+:)?(\w+)>")


def _walk(patterns, prefix="", namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}{entry.namespace}:"
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield namespace + (entry.name or ""), prefix + str(entry.pattern), entry.callback


def _console_views() -> dict[str, tuple[str, object]]:
    views = {}
    for name, route, callback in _walk(get_resolver().url_patterns):
        module = getattr(callback, "__module__", "") or ""
        if module.startswith(THIRD_PARTY_MODULES) or name.startswith(THIRD_PARTY_NAMESPACES):
            continue
        views[name or f"<unnamed {route}>"] = (route, callback)
    return views


CONSOLE_VIEWS = _console_views()
# URL name -> route ("o/<slug:slug>/api-keys/").
CONSOLE_URLS = {name: route for name, (route, _) in CONSOLE_VIEWS.items()}


def list_pages() -> list[str]:
    """URL names of the list pages: every view built on members.listing.OrgTableView."""
    from members.listing import OrgTableView

    return sorted(
        name
        for name, (_, callback) in CONSOLE_VIEWS.items()
        if issubclass(getattr(callback, "view_class", type(None)), OrgTableView)
    )
