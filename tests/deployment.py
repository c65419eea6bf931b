"""What the deployment files say, read by the tests of docker-compose.yml, the Dockerfile and
the README's configuration reference: the compose file resolved (by `docker compose config`
where the client has compose, else parsed here with the same interpolation), the .env.example
variables, and the environment variables the settings read (found in their source)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_DIR = ROOT / "console" / "settings"


def env_example() -> dict[str, str]:
    """The variables .env.example sets (commented-out lines are documentation, not settings)."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def env_example_mentions() -> set[str]:
    """Every NAME= in .env.example, set or shown in a comment."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))


def settings_variables() -> set[str]:
    """The environment variables console/settings reads: env.<cast>("NAME", …), env("NAME"),
    os.environ.get("NAME") / os.environ["NAME"] in its modules."""
    names = set()
    for path in SETTINGS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args:
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                func = ast.unparse(node.func)
                if func == "env" or func.startswith("env.") or func == "os.environ.get":
                    names.add(first.value)
            elif (
                isinstance(node, ast.Subscript)
                and ast.unparse(node.value) == "os.environ"
                and isinstance(node.slice, ast.Constant)
            ):
                names.add(node.slice.value)
    return names


_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_]\w*))")


def interpolate(text: str, values: dict[str, str], used: set[str]) -> str:
    """Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR,
    and $$ for a literal $."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        used.add(name)
        op, arg = match.group(2), match.group(3)
        value = values.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):
                return arg
        elif op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise ValueError(f"compose: {name}: {arg}")
        return value or ""

    return _VARIABLE.sub(replace, text)


def compose_client() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    return None


def compose_config() -> tuple[dict, set[str]]:
    """The compose file as compose resolves it with .env.example as the project's .env, and the
    names of the variables it interpolates."""
    text = (ROOT / "docker-compose.yml").read_text()
    used: set[str] = set()
    resolved = yaml.safe_load(interpolate(text, env_example(), used))
    client = compose_client()
    if client is not None:  # the real thing, where this machine has it: .env.example as .env
        with tempfile.TemporaryDirectory() as project:
            shutil.copy(ROOT / "docker-compose.yml", project)
            shutil.copy(ROOT / ".env.example", Path(project) / ".env")
            result = subprocess.run(
                [*client, "config", "--format", "json"],
                cwd=project, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr
        resolved = json.loads(result.stdout)
    return resolved, used
