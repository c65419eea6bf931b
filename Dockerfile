# syntax=docker/dockerfile:1
# The console's image: one image for every process of docker-compose.yml (web, worker, beat,
# migrate); the command picks the process. Build: `docker compose build`.

# -- dependencies: a virtualenv made from uv.lock alone, so this layer is rebuilt only when
#    pyproject.toml or uv.lock change (code changes reuse it).
FROM python:3.11-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv>=0.13,<0.14"
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# -- the image that runs.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 console \
    && useradd --system --uid 10001 --gid console --home-dir /app --shell /usr/sbin/nologin console
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY . .
# Static files collected at build time (whitenoise serves them, compressed, with hashed names).
# A throwaway key: collectstatic needs settings, not secrets; nothing of it stays in the image.
RUN SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --noinput --verbosity 0 \
    && mkdir -p /app/var/usage-spool \
    && chown -R console:console /app/var
USER console
EXPOSE 8000
# The web process (docker-compose.yml gives worker, beat and migrate their own commands).
CMD ["uvicorn", "console.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "30", "--no-access-log", "--log-config", "console/uvicorn-logging.json"]
