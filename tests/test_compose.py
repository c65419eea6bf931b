"""docker-compose.yml and the Dockerfile, checked without a Docker engine: every service of the
console's image runs a command that exists in this project with options its program accepts,
every variable handed to those containers is read by the settings (or by the program the
comment names), and compose's own variables are documented in .env.example, the one place to
configure. The processes themselves are started by hand in tests/test_processes.py."""

from __future__ import annotations

import importlib.util
import json
import logging.config
import shlex
from pathlib import Path

import pytest
from celery.app.control import Inspect
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands

from .deployment import ROOT, compose_config, env_example, env_example_mentions, settings_variables

CONSOLE_SERVICES = {"migrate", "web", "worker", "beat"}
LONG_RUNNING = {"postgres", "redis", "web", "worker", "beat", "mailpit"}
# Variables the console's containers receive that something other than the settings reads.
READ_ELSEWHERE = {
    "WEB_CONCURRENCY": "uvicorn's --workers default",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus-client: the web workers' metric files",
    "POSTGRES_USER": "compose: the postgres service and DATABASE_URL",
    "POSTGRES_PASSWORD": "compose: the postgres service and DATABASE_URL",
    "POSTGRES_DB": "compose: the postgres service and DATABASE_URL",
    "WEB_PORT": "compose: the published port",
    "MAILPIT_PORT": "compose: the published port",
}


@pytest.fixture(scope="module")
def compose():
    return compose_config()


def options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def given_options(args: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("-")]


def check_command(argv: list[str]) -> None:
    """Fails unless `argv` runs something this project has, with options its program takes."""
    program, args = argv[0], argv[1:]
    if program == "python":
        if args[0] == "manage.py":
            assert args[1] in get_commands(), f"no management command {args[1]!r}"
        else:
            assert args[0] == "-m", argv
            spec = importlib.util.find_spec(args[1])
            assert spec is not None and spec.origin.startswith(str(ROOT)), argv
    elif program == "uvicorn":
        uvicorn_main = importlib.import_module("uvicorn.main").main
        unknown = set(given_options(args)) - options(uvicorn_main)
        assert not unknown, f"uvicorn has no option {unknown}"
        target = next(arg for arg in args if not arg.startswith("-") and ":" in arg)
        module, attribute = target.split(":")
        source = importlib.util.find_spec(module).origin
        assert source.startswith(str(ROOT)), target
        text = Path(source).read_text()
        assert f"\nasync def {attribute}(" in text or f"\n{attribute} =" in text, target
        if "--log-config" in args:  # uvicorn's own lines, formatted as LOG_FORMAT says
            log_config = ROOT / args[args.index("--log-config") + 1]
            logging.config.dictConfig(json.loads(log_config.read_text()))
    elif program == "celery":
        assert args[:2] == ["--app", "console"], argv
        from console.celery import app

        assert app.main == "console"
        subcommand = args[2]
        assert subcommand in celery_cli.commands, f"celery has no {subcommand!r} command"
        accepted = options(celery_cli) | options(celery_cli.commands[subcommand])
        unknown = set(given_options(args[3:])) - accepted
        assert not unknown, f"celery {subcommand} has no option {unknown}"
        if subcommand == "inspect":
            assert hasattr(Inspect, args[3]), f"celery inspect has no {args[3]!r}"
    else:
        pytest.fail(f"{argv}: not a program of the console's image")


def healthcheck_argv(test: list[str]) -> list[str]:
    kind, rest = test[0], test[1:]
    if kind == "CMD-SHELL":
        return shlex.split(rest[0].replace("$HOSTNAME", "host"))
    assert kind == "CMD", test
    return rest


def test_compose_services_volumes_and_order(compose):
    config, _ = compose
    services = config["services"]
    assert set(services) == {"postgres", "redis", "mailpit", *CONSOLE_SERVICES}
    for name in CONSOLE_SERVICES:
        service = services[name]
        assert service["build"] in (".", {"context": "."}) or service["build"]["context"] in (
            ".", str(ROOT)
        ), name  # fmt: skip
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "migrate":  # migrations once, before anything else starts
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"].get("restart", "no") == "no"
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], name
    # Data outlives containers: named volumes, declared at the top level.
    mounts = {
        name: [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in s["volumes"]]
        for name, s in services.items()
        if s.get("volumes")
    }
    assert any(m.endswith(":/var/lib/postgresql/data") for m in mounts["postgres"])
    assert any(m.endswith(":/data") for m in mounts["redis"])
    assert any(m.endswith(":/app/var/usage-spool") for m in mounts["web"])
    for volumes in mounts.values():
        for mount in volumes:
            assert mount.split(":")[0] in config["volumes"], mount
    # The usage stream must survive a Redis restart and never be evicted.
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "noeviction" in redis_command


def test_every_command_exists_in_the_project(compose):
    config, _ = compose
    services = config["services"]
    for name in CONSOLE_SERVICES:
        check_command(services[name]["command"])
        if "healthcheck" in services[name]:
            check_command(healthcheck_argv(services[name]["healthcheck"]["test"]))
    assert services["beat"]["command"][3] == "beat"
    assert services["worker"]["command"][3] == "worker"


def test_beat_uses_the_database_scheduler():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"
    assert "django_celery_beat" in settings.INSTALLED_APPS


def test_every_variable_passed_is_read_by_the_settings(compose):
    config, _ = compose
    read = settings_variables()
    for name in CONSOLE_SERVICES:
        service = config["services"][name]
        passed = set(service.get("environment") or {})
        # env_file: .env, made from .env.example
        passed |= set(env_example())
        unread = {v for v in passed if v not in read and v not in READ_ELSEWHERE}
        assert not unread, f"{name}: variables no setting reads: {sorted(unread)}"


def test_compose_variables_are_documented_in_env_example(compose):
    _, used = compose
    documented = env_example_mentions()
    assert used, "the compose file interpolates nothing?"
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_the_settings_refuse_an_unknown_variable_check_can_fail():
    """The check above can fail: a variable nobody reads is found."""
    assert "NOT_A_SETTING_AT_ALL" not in settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CONSOLE_SETTINGS"} <= settings_variables()


def test_the_dockerfile_runs_as_a_user_with_locked_dependencies_cached():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    first_from = next(line for line in instructions if line.startswith("FROM "))
    assert "-slim" in first_from
    copy_lock = instructions.index("COPY pyproject.toml uv.lock ./")
    sync = next(i for i, line in enumerate(instructions) if "uv sync --frozen --no-dev" in line)
    copy_all = instructions.index("COPY . .")
    assert copy_lock < sync < copy_all  # code changes reuse the dependency layer
    collect = next(i for i, line in enumerate(instructions) if "collectstatic" in line)
    user = next(i for i, line in enumerate(instructions) if line.startswith("USER "))
    assert copy_all < collect < user
    assert instructions[user].split()[1] not in ("root", "0")
    cmd = next(line for line in instructions if line.startswith("CMD "))
    check_command(json.loads(cmd[4:]))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".env", ".git"} <= set(ignored)
