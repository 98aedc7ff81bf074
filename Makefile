# postdesk: `make run` starts the service on SQLite; `make test` checks everything.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8700
SMTP_SINK ?= /usr/sbin/smtp-sink

.PHONY: run test check lint types imports pytest format bench clean lock

run: $(VENV)/.run-installed
	$(BIN)/postdesk serve --host $(HOST) --port $(PORT)

test: $(VENV)/.test-installed check pytest

check: lint types imports

lint: $(VENV)/.test-installed
	$(BIN)/ruff format --check src tests bench docs/screenshots
	$(BIN)/ruff check src tests bench docs/screenshots

types: $(VENV)/.test-installed
	$(BIN)/mypy

imports: $(VENV)/.test-installed
	$(BIN)/lint-imports

pytest: $(VENV)/.test-installed
	$(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS)

bench: $(VENV)/.test-installed $(SMTP_SINK)
	$(BIN)/python bench/bench_builder.py
	$(BIN)/python bench/bench_records.py
	$(BIN)/python bench/bench_throughput.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_cli.py

# The throughput and memory benchmarks send to Postfix's smtp-sink (Debian: package postfix).
$(SMTP_SINK):
	DEBIAN_FRONTEND=noninteractive apt-get install -y postfix

format: $(VENV)/.test-installed
	$(BIN)/ruff format src tests bench docs/screenshots
	$(BIN)/ruff check --fix src tests bench docs/screenshots

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	touch $@

# Installs take the versions of constraints.txt, so that a fresh install is the one tested;
# `make lock` resolves pyproject.toml's ranges afresh and writes it again.
$(VENV)/.run-installed: $(VENV)/.created pyproject.toml constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.created pyproject.toml constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.run-installed

lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check '.[test]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -iv '^postdesk' > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
