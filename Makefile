# kaohe — two commands on a fresh machine: `make run` and `make test`.
# Needs only Python 3.11+, make and git; uv is bootstrapped with pip if missing.

PYTHON ?= python3
# uv on PATH if there is one, else the uv module of $(PYTHON) (installed by `make uv`)
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen

# browser tests drive Debian's chromium (never a downloaded browser)
export KAOHE_CHROMIUM ?= /usr/bin/chromium
# the PostgreSQL server of `make test-pg` (started on loopback by .ci/postgres if none runs)
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: run demo test test-pg screenshots chromium postgres lint bench setup uv clean clean-demo

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user uv \
		|| $(PYTHON) -m pip install --quiet --break-system-packages uv

# bytecode is compiled at install time (and for src/, which is installed editable): a
# machine or image with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module
# on every command (≈ 0.3 s of each `kaohe` run)
setup: uv
	@$(UV) sync --frozen --quiet --compile-bytecode
	@$(RUN) python -m compileall -q src

# serve the web app at http://127.0.0.1:8000 over the demo database (var/demo/,
# created and seeded on first run; the demo users' passwords are printed)
run: setup
	$(RUN) kaohe serve --demo

# the command-line scoring demo: rankings per township + XLSX report in out/
demo: setup
	$(RUN) kaohe demo

test: setup lint chromium
	$(RUN) pytest -q -n 2

# the database tests (marker `db`: every test using the db fixtures) on PostgreSQL
test-pg: setup postgres
	KAOHE_TEST_DATABASE_URL=$(PG_URL) $(RUN) pytest -q -n 2 -m db

# refresh docs/screenshots/ (the browser tests save their screenshots there)
screenshots: setup chromium
	KAOHE_SCREENSHOTS=1 $(RUN) pytest -q -n 2 -m browser

# Debian's chromium, and a CJK font so that pages and screenshots show Chinese
chromium:
	@{ test -x $(KAOHE_CHROMIUM) && fc-list :lang=zh 2>/dev/null | grep -q .; } || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's chromium (and a CJK font) for the browser tests"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				chromium fonts-wqy-microhei; \
		else \
			echo "The browser tests need Debian's chromium at $(KAOHE_CHROMIUM) and a CJK font:" \
				"run 'sudo apt-get install chromium fonts-wqy-microhei'" \
				"(or set KAOHE_CHROMIUM=/path/to/chromium)." >&2; \
			exit 1; \
		fi; }

postgres:
	@.ci/postgres

lint: setup
	$(RUN) ruff check src tests benchmarks
	$(RUN) ruff format --check src tests benchmarks
	$(RUN) mypy

bench: setup
	$(RUN) python benchmarks/run.py

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache out

# the demo database and its passwords (make run creates them again)
clean-demo:
	rm -rf var/demo
