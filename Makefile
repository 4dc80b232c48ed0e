# mmclip: the two commands users need on a fresh machine (Python 3.11 + pip).
#   make demo   set up .venv, install, run the main job end to end
#   make test   set up .venv with test extras, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/python -m pip
# Exact releases for reproducible runs; requirements/*.txt declare ranges.
CONSTRAINTS := requirements/constraints.txt
PYTEST_ARGS ?=

.PHONY: demo test install install-tests benchmark clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(CONSTRAINTS) --upgrade pip setuptools wheel

# Runtime + demo data; the stamp reinstalls when a requirements file changes.
$(VENV)/.installed: $(VENV)/bin/python setup.py $(CONSTRAINTS) requirements/runtime.txt requirements/mminstall.txt requirements/optional.txt
	$(PIP) install -c $(CONSTRAINTS) -r requirements/runtime.txt -r requirements/mminstall.txt -r requirements/optional.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-tests: $(VENV)/.installed $(CONSTRAINTS) requirements/tests.txt requirements/deploy.txt
	$(PIP) install -c $(CONSTRAINTS) -r requirements/tests.txt -r requirements/deploy.txt
	touch $@

install: $(VENV)/.installed
install-tests: $(VENV)/.installed-tests

demo: $(VENV)/.installed
	$(PY) tools/demo.py

test: $(VENV)/.installed-tests
	$(PY) -m pytest tests $(PYTEST_ARGS)

benchmark: $(VENV)/.installed-tests
	$(PY) tools/benchmarks/benchmark.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
