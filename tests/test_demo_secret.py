"""The embedded (`make run`) SECRET_KEY is made per checkout, on first use, and kept in a file git
ignores: no two demo installs share one. Production refuses to start without its own."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from .test_production_settings import check_deploy

ROOT = Path(__file__).resolve().parent.parent
OLD_EMBEDDED_KEY = "django-insecure-embedded-demo-key-change-me"
KEY_FILE = ROOT / "var" / "demo-secret-key"


def settings_secret_key() -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in {"SECRET_KEY", "CONSOLE_SETTINGS", "CONSOLE_ENV_FILE"}}  # fmt: skip
    env.update(DJANGO_SETTINGS_MODULE="console.settings", CONSOLE_ENV_FILE="/nonexistent")
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_demo_key_is_this_checkouts_own():
    key = settings_secret_key()
    assert key != OLD_EMBEDDED_KEY
    assert KEY_FILE.read_text().strip() == key
    assert settings_secret_key() == key  # kept, not made anew


def test_each_checkout_makes_its_own_key_kept_private(tmp_path):
    from console.settings.base import demo_secret_key

    first = demo_secret_key(tmp_path / "one" / "var" / "demo-secret-key")
    second = demo_secret_key(tmp_path / "two" / "var" / "demo-secret-key")
    assert first != second
    assert demo_secret_key(tmp_path / "one" / "var" / "demo-secret-key") == first
    assert len(first) >= 50 and first.startswith("django-insecure-")  # production refuses it
    mode = stat.S_IMODE((tmp_path / "one" / "var" / "demo-secret-key").stat().st_mode)
    assert mode == 0o600


def test_the_key_file_is_ignored_by_git():
    result = subprocess.run(["git", "check-ignore", "-q", "var/demo-secret-key"], cwd=ROOT)
    assert result.returncode == 0


def test_production_refuses_to_start_with_the_demo_key(tmp_path):
    result = check_deploy(tmp_path, SECRET_KEY="")
    assert result.returncode != 0
    assert "Set SECRET_KEY to a long random value in production." in result.stderr
