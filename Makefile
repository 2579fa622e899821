# kaohe — two commands on a fresh machine: `make run` and `make test`.
# Needs only Python 3.11+, make and git; uv is bootstrapped with pip if missing.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: run test lint bench setup uv clean check-lock

uv:
	@command -v uv >/dev/null 2>&1 || test -x $(HOME)/.local/bin/uv || \
		$(PYTHON) -m pip install --user --quiet uv || $(PYTHON) -m pip install --quiet --break-system-packages uv

setup: uv
	@$(UV) sync --frozen --quiet

run: setup
	$(RUN) kaohe demo

test: setup lint
	$(RUN) pytest -q -n 2

lint: setup
	$(RUN) ruff check src tests benchmarks
	$(RUN) ruff format --check src tests benchmarks
	$(RUN) mypy

bench: setup
	$(RUN) python benchmarks/run.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache out
