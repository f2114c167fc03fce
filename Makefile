# Two commands: `make up` runs everything, `make test` runs every check. Both set up what is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
ENGINE := node_modules/.package-lock.json
CHROMIUM := /usr/bin/chromium
WRK := /usr/bin/wrk

.PHONY: up test test-replay check setup browser wrk bench lock clean

up: setup
	exec $(BIN)/foodorder up

# The browser tests run in a pytest process of their own: in one process with the schemathesis
# run (which loads hypothesis' pytest plugin), Playwright's clicks in chromium time out.
test: check browser wrk
	$(BIN)/pytest --ignore=tests/browser
	$(BIN)/pytest tests/browser
	$(MAKE) test-replay

# The flow's tests again, with restate-server suspending every invocation at every await so that
# each step is replayed from the journal: nondeterministic handler code fails here (the readers' long
# polls, `waitForStatus` and `waitForEvents`, set an inactivity timeout of their own and are not
# replayed this way). Left out: the runs under load (fuzz, chaos, bench, cluster); process stops and
# restarts, which replay every invocation in flight from its journal anyway (shutdown, restart,
# releases); and what is the gateway's alone or never reaches a handler's journal (request
# validation, addresses, the public door's limits and streams, telemetry).
test-replay: setup
	RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT=0s $(BIN)/pytest -q tests/integration \
	  --ignore=tests/integration/test_api_fuzz.py --ignore=tests/integration/test_chaos.py \
	  --ignore=tests/integration/test_bench.py --ignore=tests/integration/test_cluster.py \
	  --ignore=tests/integration/test_shutdown.py --ignore=tests/integration/test_restart.py \
	  --ignore=tests/integration/test_releases.py --ignore=tests/integration/test_api_errors.py \
	  --ignore=tests/integration/test_addresses.py --ignore=tests/integration/test_public.py \
	  --ignore=tests/integration/test_observability.py --ignore=tests/integration/test_hardening.py

check: setup
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests
	$(BIN)/mypy

setup: $(INSTALLED) $(ENGINE)

# Debian's chromium (and an emoji font) for the browser tests, installed with apt when root can;
# otherwise the browser tests fail and say what is missing.
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji; \
	  else echo "warning: $(CHROMIUM) is missing and cannot be installed here: the browser tests will fail"; fi; }

# Debian's wrk, the native load generator that drives the bench's HTTP phases, installed with apt when
# root can; otherwise the bench (and its test) fail and say what is missing.
wrk:
	@test -x $(WRK) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	  else echo "warning: $(WRK) is missing and cannot be installed here: the bench will fail"; fi; }

# The quick bench on a stack of its own (bench/results/latest.json and latest.md).
bench: setup wrk
	$(BIN)/foodorder bench --quick

# The Python package and its pinned dependencies (requirements.lock), into .venv/.
$(INSTALLED): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

# restate-server and the restate CLI, pinned by package-lock.json.
$(ENGINE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Regenerate requirements.lock after changing dependencies in pyproject.toml.
lock:
	rm -rf /tmp/foodorder-lock && $(PYTHON) -m venv /tmp/foodorder-lock
	/tmp/foodorder-lock/bin/pip install --quiet '.[dev]'
	/tmp/foodorder-lock/bin/pip freeze --exclude-editable | grep -v '^foodorder' > requirements.lock

clean:
	rm -rf $(VENV) node_modules .foodorder test-artifacts
