# `make run` serves the demo; `make test` sets up and runs everything CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PG_URL ?= $(or $(PORTAL_TEST_DATABASE_URL),postgresql://postgres@127.0.0.1:5432/test)

.PHONY: install run test lint test-sqlite test-postgres test-browser chromium bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/portal demo

lint: $(STAMP)
	$(BIN)/ruff check portal tests bench migrations
	$(BIN)/mypy

# Debian's Chromium drives the browser tests; Playwright cannot download its own browser here.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: run 'sudo apt-get install chromium'"; [ -z "$$CI" ] || exit 1; fi; \
	fi

test-sqlite: $(STAMP)
	$(BIN)/pytest -m "not browser"

test-postgres: $(STAMP)
	PORTAL_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest -m "not browser"

test-browser: $(STAMP) chromium
	PORTAL_TEST_DATABASE_URL=$(PG_URL) $(BIN)/pytest -m browser

test: lint test-sqlite test-postgres test-browser

# bench/pages.py loads the pages with wrk (Debian's package), installed here when root.
bench: $(STAMP)
	@if ! command -v wrk >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	fi
	@for script in bench/*.py; do [ -e "$$script" ] && $(BIN)/python "$$script"; done; true

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
