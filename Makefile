# One-command entry points. `make demo` and `make test` set up everything they need first:
# Debian packages + pgvector (scripts/setup-system.sh, as root or via sudo) and the virtualenv.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
STAMP := $(VENV)/.autoembed-installed
PIP := $(VENV)/bin/pip --disable-pip-version-check -q

.PHONY: setup system python demo test test-fast bench chaos sync-migrations

setup: system python

system:
	$(SUDO) bash scripts/setup-system.sh
	$(SUDO) bash scripts/setup-supabase-profile.sh

python: $(STAMP)

# torch is pinned first: 2.13.0 is the CPU build this machine kind carries; a looser spec pulls CUDA.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0 > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(PIP) install -e '.[local,dev,supabase,korean,django]' >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	$(VENV)/bin/python -c "import autoembed.cli, sentence_transformers, pgmq, pgvector"
	touch $@

demo: setup
	$(VENV)/bin/autoembed demo

# `make test`: the whole suite, then a bounded part of it again on the Supabase-faithful profile
# (README: Development): the integration suite and the reliability tests that exercise the
# database (restarts, several workers, schema changes, denied privileges, killed workers).
SUPABASE_SUBSET := tests/integration $(addprefix tests/reliability/test_,database_restart.py \
	multiple_workers.py schema_changes.py worker_errors.py worker_kills.py)

test: setup
	$(VENV)/bin/python -m pytest
	AUTOEMBED_TEST_PROFILE=supabase $(VENV)/bin/python -m pytest $(SUPABASE_SUBSET)

test-fast: setup
	$(VENV)/bin/python -m pytest -m "not model"

bench: setup
	$(VENV)/bin/python bench/run_all.py --with-peer

chaos: setup
	AUTOEMBED_CHAOS_SCALE=10 $(VENV)/bin/python bench/chaos.py

sync-migrations:
	bash scripts/sync-supabase-migrations.sh
