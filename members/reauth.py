"""Re-authentication before sensitive actions: creating an Admin API key, changing a member's
role, changing an upstream (its URL or key). A POST to such a view from a session that has not
re-entered its password (or second factor) in the last `ACCOUNT_REAUTHENTICATION_TIMEOUT`
seconds (allauth's default: 5 minutes) is held, the user is asked to confirm who they are
(allauth's reauthenticate page), and the held POST is then carried out. Pages (GET) open freely.

Put it under the access decorator, so that whoever may not act gets the 403/404 first:

    @org_view("adminkeys.create")
    @sensitive_action
    def admin_key_create(request): ...

A form whose POST carries a secret (an upstream's API key) uses `sensitive_secret_form`
instead: allauth keeps a held POST in the session, in the database, until it is carried out, and
a key must not wait there. The page itself asks for the password before it opens; a POST that
comes too late is not held but sent back to the page after the password, with nothing saved.

`CONSOLE_REAUTHENTICATION=false` turns it off (the test suite does, except where it tests it).
"""

from functools import wraps
from urllib.parse import urlencode

from allauth.account.decorators import reauthentication_required
from allauth.account.internal.flows.reauthentication import is_reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse


def _enabled(request) -> bool:
    return settings.CONSOLE_REAUTHENTICATION


sensitive_action = reauthentication_required(allow_get=True, enabled=_enabled)


def sensitive_secret_form(view):
    asked = reauthentication_required(allow_get=False, enabled=_enabled)(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if (
            request.method == "POST"
            and _enabled(request)
            and is_reauthentication_required(request, app="")
        ):
            messages.warning(request, "Nothing was saved: confirm your password, then save again.")
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('account_reauthenticate')}?{query}")
        return asked(request, *args, **kwargs)

    return wrapper
