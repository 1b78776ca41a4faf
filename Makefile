# Pulse developer tasks.  `make test` is what CI runs (via .ci/run).
#
#   make venv    create .venv and install Pulse editable with [dev,embedded]; idempotent, and
#                reinstalls only when pyproject.toml changed; installs redis-server if missing (root only)
#   make test    the whole suite, tests/unit and tests/e2e (starts its own broker, Redis ...); installs
#                Debian's prometheus and prometheus-alertmanager if missing (root only): promtool, amtool
#                and both servers run the rule tests and the compose smoke test
#   make test-fast  the unit tier only (tests/unit + doctests): no services, on every core (pytest-xdist),
#                under two minutes
#   make demo    pulse demo  (embedded broker + Redis unless PULSE_KAFKA_BOOTSTRAP / PULSE_REDIS_URL are set)
#   make bench   pulse bench
#   make lint    ruff + mypy
#
# Extra arguments: make test PYTEST_ARGS='-k redis -x'   make demo ARGS='--help'

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pulse-install.stamp
PYTEST_ARGS ?=
ARGS ?=

.DEFAULT_GOAL := test
.PHONY: venv redis-server chromium prometheus test demo bench lint

venv: $(STAMP) redis-server chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp; the stamp is touched only on success.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,embedded]'
	touch $@

# The embedded Redis runs the system's redis-server; install it only if it is missing and we are root.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (apt-get)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q redis-server </dev/null || \
	      { apt-get update -q </dev/null && apt-get install -y -q redis-server </dev/null; }; \
	  else \
	    echo "warning: redis-server is not on PATH; install it: sudo apt-get install -y redis-server" >&2; \
	  fi; \
	fi

# tests/e2e/test_browser.py drives Debian's chromium headless (Playwright's browser download needs the internet).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get)"; export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium </dev/null || \
	      { apt-get update -q </dev/null && apt-get install -y -q chromium </dev/null; }; \
	  else echo "warning: /usr/bin/chromium is missing; tests/e2e/test_browser.py will skip: sudo apt-get install -y chromium" >&2; fi; \
	fi

# tests/e2e/test_prometheus_rules.py and tests/e2e/test_compose_smoke.py run Debian's Prometheus 2.42 (promtool)
# and Alertmanager 0.25 (prometheus-alertmanager, amtool) on the project's own config files (on a host with
# systemd, Debian also enables their services; the tests start their own copies on free ports).
prometheus:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing prometheus, prometheus-alertmanager (apt-get)"; export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager </dev/null || \
	      { apt-get update -q </dev/null && apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager </dev/null; }; \
	  else echo "warning: promtool/prometheus-alertmanager missing; rule and smoke tests will skip: sudo apt-get install -y prometheus prometheus-alertmanager" >&2; fi; \
	fi

test: venv prometheus
	$(BIN)/python -m pytest -p no:cacheprovider -q --durations=10 $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -q --durations=5 -n auto tests/unit streams schemas online_models studies $(PYTEST_ARGS)

demo: venv
	$(BIN)/pulse demo $(ARGS)

bench: venv
	$(BIN)/pulse bench $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy streams schemas online_models infra studies
