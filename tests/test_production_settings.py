"""Production settings: `manage.py check --deploy` is clean with the documented settings
(.env.example), and a production setting left out stops the process with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_deploy(tmp_path=None, **overrides: str) -> subprocess.CompletedProcess:
    """`check --deploy` with .env.example, some of its lines replaced by `overrides` (the env
    file wins over the process environment, so overrides go into a copy of the file)."""
    env_file = ROOT / ".env.example"
    if overrides:
        lines = [
            line for line in env_file.read_text().splitlines()
            if line.split("=", 1)[0] not in overrides
        ]  # fmt: skip
        env_file = tmp_path / "env"
        env_file.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in overrides.items())]))
    # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process; a deployment has not.
    dev_only = {"CONSOLE_SETTINGS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in dev_only}
    env["CONSOLE_ENV_FILE"] = str(env_file)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_documented_production_settings_pass_the_deploy_check():
    result = check_deploy()
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_a_console_address_without_https(tmp_path):
    result = check_deploy(tmp_path, CONSOLE_BASE_URL="http://console.example.com")
    assert result.returncode != 0
    assert "Set CONSOLE_BASE_URL to the console's https:// address" in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path):
    result = check_deploy(tmp_path, SECRET_KEY="short")
    assert result.returncode != 0
    assert "Set SECRET_KEY to a long random value in production." in result.stderr


def test_production_refuses_a_missing_or_short_pepper(tmp_path):
    for pepper in ("", "short-pepper"):
        result = check_deploy(tmp_path, API_KEY_PEPPER=pepper)
        assert result.returncode != 0
        assert "Set API_KEY_PEPPER (32+ random characters) in production." in result.stderr


def test_production_refuses_an_encryption_key_that_is_not_a_fernet_key(tmp_path):
    """A malformed key would otherwise start fine and fail at the first upstream key saved."""
    good = "cmVwbGFjZS1tZS13aXRoLXlvdXItb3duLWtleS0zMmI="
    for keys in ("", "not-a-fernet-key", f"{good},also-not-one"):
        result = check_deploy(tmp_path, UPSTREAM_KEY_ENCRYPTION_KEYS=keys)
        assert result.returncode != 0, keys
        assert "UPSTREAM_KEY_ENCRYPTION_KEYS" in result.stderr, result.stderr[-500:]
    assert check_deploy(tmp_path, UPSTREAM_KEY_ENCRYPTION_KEYS=f"{good}, {good}").returncode == 0


def test_a_database_that_is_down_at_start_stops_migrate_with_its_reason():
    """compose's `migrate` runs first; with the database down it exits non-zero naming it (and
    nothing else starts: the other services wait for it to complete successfully)."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/console",  # nothing listens on port 1
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "OperationalError" in result.stderr and "127.0.0.1" in result.stderr
    assert "port 1" in result.stderr and "Connection refused" in result.stderr
