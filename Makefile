# Two entry points: `make run` (dashboard on the built-in demo) and `make test` (the whole suite).
# Both create .venv when it is missing and reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Two workers: the project's machines have 2 cores. loadgroup keeps a module's shared setup on one worker.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: install run test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/studio ui --demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/quality_scan.py
	$(PY) bench/train_overhead.py
	$(PY) bench/eval_generation.py
	$(PY) bench/review_load.py

clean:
	rm -rf $(VENV) build *.egg-info
