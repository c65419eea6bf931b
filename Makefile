# console — the README's commands. Everything installs itself: a fresh machine needs only python3.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := .tools/bin/uv
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
SIM_PORT ?= 9100
# `make run` without REDIS_URL: the Redis stand-in its workers share (console/standin_redis.py).
STANDIN_REDIS_PORT ?= 6390
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/console
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: env run test lint format deploy-check bench services chromium clean

$(UV):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools "uv>=0.13,<0.14"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	PYTHONPATH=.tools $(UV) sync --frozen --quiet
	touch $@

env: $(VENV)/.synced

run: env
	@# One shell: the helper processes started here stop with the console (trap).
	@set -e; trap 'kill $$(jobs -p) 2>/dev/null || true' EXIT INT TERM; \
	if [ -z "$$REDIS_URL" ]; then \
	  $(PY) -m console.standin_redis --port $(STANDIN_REDIS_PORT) & \
	  for i in $$(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$(STANDIN_REDIS_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	  export REDIS_URL=redis://127.0.0.1:$(STANDIN_REDIS_PORT)/0 WEB_RUNS_BACKGROUND_WORK=1; \
	fi; \
	$(PY) manage.py migrate --noinput; \
	$(PY) manage.py createcachetable; \
	$(PY) manage.py collectstatic --noinput --verbosity 0; \
	$(PY) manage.py seed_demo; \
	if [ -n "$$ANTHROPIC_API_KEY" ]; then \
	  export GATEWAY_DEFAULT_UPSTREAM_URL=https://api.anthropic.com GATEWAY_DEFAULT_UPSTREAM_KEY="$$ANTHROPIC_API_KEY"; \
	else \
	  $(PY) -m gateway.simulator --port $(SIM_PORT) & \
	  echo "Upstream: simulator on http://127.0.0.1:$(SIM_PORT)"; \
	  export GATEWAY_DEFAULT_UPSTREAM_URL=http://127.0.0.1:$(SIM_PORT) GATEWAY_DEFAULT_UPSTREAM_KEY=sk-sim-demo; \
	  export GATEWAY_LOCAL_UPSTREAM_HOSTS=$${GATEWAY_LOCAL_UPSTREAM_HOSTS:-127.0.0.1}; \
	  export USAGE_IMPORT_BASE_URL=$${USAGE_IMPORT_BASE_URL:-http://127.0.0.1:$(SIM_PORT)}; \
	fi; \
	export CONSOLE_BASE_URL="$${CONSOLE_BASE_URL:-http://$(HOST):$(PORT)}"; \
	export PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus; rm -rf var/prometheus; mkdir -p var/prometheus; \
	echo "Console: http://$(HOST):$(PORT)/  (gateway: ANTHROPIC_BASE_URL=http://$(HOST):$(PORT))"; \
	$(VENV)/bin/uvicorn console.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) --log-config console/uvicorn-logging.json

services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && exit 0; sleep 1; done; echo "PostgreSQL or Redis did not start" >&2; exit 1

chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: env services chromium tests/gateway/ts/node_modules
	$(PY) manage.py collectstatic --noinput --verbosity 0
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest $(PYTEST_ARGS)

# The official TypeScript SDK for tests/gateway/test_gateway_typescript.py (lockfile committed).
tests/gateway/ts/node_modules: tests/gateway/ts/package-lock.json
	cd tests/gateway/ts && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: env
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

deploy-check: env
	CONSOLE_ENV_FILE=.env.example $(PY) manage.py check --deploy --fail-level WARNING

bench: env services
	@set -e; for script in bench/bench_*.py; do [ -e "$$script" ] || continue; DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) "$$script"; done

clean:
	rm -rf $(VENV) .tools staticfiles db.sqlite3
