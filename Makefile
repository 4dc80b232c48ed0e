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
# pip's output goes to .venv/install.log (the console gets one line a step);
# when a step fails, the end of the log is shown.
LOG := $(VENV)/install.log
QUIET = >> $(LOG) 2>&1 || { tail -n 40 $(LOG); exit 1; }

.PHONY: demo test install install-tests benchmark clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	@echo "Installing into $(VENV); pip's log: $(LOG)"
	@$(PIP) install -c $(CONSTRAINTS) --upgrade pip setuptools wheel $(QUIET)

# Runtime + demo data; the stamp reinstalls when a requirements file changes.
$(VENV)/.installed: $(VENV)/bin/python setup.py $(CONSTRAINTS) requirements/runtime.txt requirements/mminstall.txt requirements/optional.txt
	@echo "Installing mmclip and its requirements (a few minutes)"
	@$(PIP) install -c $(CONSTRAINTS) -r requirements/runtime.txt -r requirements/mminstall.txt -r requirements/optional.txt $(QUIET)
	@$(PIP) install --no-deps --no-build-isolation -e . $(QUIET)
	@touch $@

$(VENV)/.installed-tests: $(VENV)/.installed $(CONSTRAINTS) requirements/tests.txt requirements/deploy.txt requirements/search.txt requirements/parity.txt
	@echo "Installing the test extras"
	@$(PIP) install -c $(CONSTRAINTS) -r requirements/tests.txt -r requirements/deploy.txt -r requirements/search.txt $(QUIET)
	@$(PIP) install -c $(CONSTRAINTS) --no-deps -r requirements/parity.txt $(QUIET)
	@touch $@

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
