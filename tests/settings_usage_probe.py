"""The console's settings plus the usage probe (tests/usage_probe.py), for test workers."""

from console.settings import *  # noqa: F403
from console.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.usage_probe.UsageProbe"]
