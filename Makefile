# PicoGrid: `make demo` runs a whole PicoGrid on this machine, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := chromium chromium-driver influxdb faketime

.PHONY: demo test lint bench venv system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime install; re-run whenever pyproject.toml changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the real-parts tests use (headless Chromium, InfluxDB, faketime for nodes whose
# clock is set off). Installed only when we are root and apt is available; otherwise the tests
# that need them say what is missing.
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

demo: $(VENV)/.installed
	$(BIN)/picogrid demo

# Most tests wait on real processes and intervals, so three run at once even on two cores
# (each must pass beside two busy loops anyway); `make test WORKERS=0` runs them one by one.
WORKERS ?= 3

test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check ledger market hardware node tests benchmarks
	$(BIN)/python -m pytest -q -n $(WORKERS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check ledger market hardware node tests benchmarks
	$(BIN)/ruff format --check ledger market hardware node tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/replicate.py
	$(BIN)/python benchmarks/converge.py
	$(BIN)/python benchmarks/settle.py

clean:
	rm -rf $(VENV) build *.egg-info
