"""Settings, read from the environment (django-environ).

`make run` needs nothing set: SQLite, an in-process stand-in for Redis, eager tasks and emails
printed to the console. Production sets `CONSOLE_SETTINGS=production` (see `.env.example`), which
layers `console.settings.production` on top of these defaults.
"""

import os

from .base import *  # noqa: F403

if os.environ.get("CONSOLE_SETTINGS", "").lower() == "production":
    from .production import *  # noqa: F403

if CONSOLE_SIGNUP not in ("open", "invite"):  # noqa: F405
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CONSOLE_SIGNUP must be open or invite.")
