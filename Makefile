# kaohe — two commands on a fresh machine: `make run` and `make test`.
# Needs only Python 3.11+, make and git; uv is bootstrapped with pip if missing.

PYTHON ?= python3
# uv on PATH if there is one, else the uv module of $(PYTHON) (installed by `make uv`)
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen

.PHONY: run test lint bench setup uv clean

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user uv \
		|| $(PYTHON) -m pip install --quiet --break-system-packages uv

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
