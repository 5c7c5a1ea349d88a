# make book   build the Jupyter Book from the notebooks' stored outputs (warnings are errors)
# make test   everything CI checks: library tests and the notebooks on the smoke budget
# make lab    open JupyterLab on the notebooks
# make setup  create .venv with the package and its dev extras (done automatically)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export NAE_DATA ?= $(abspath ../shared/datasets)

.PHONY: setup book lab test test-lib test-notebooks test-browser bench pretrained clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed

book: setup
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

test: setup test-lib test-notebooks

test-lib: setup
	$(PY) -m pytest tests -q

test-notebooks: setup
	NAE_BUDGET=smoke $(PY) -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks -q -p no:cacheprovider

test-browser: setup
	$(PY) -m pytest tests -q -m browser

bench: setup
	$(PY) benchmarks/bench_step.py --config mnist_ood

pretrained: setup
	$(PY) scripts/make_pretrained.py

clean:
	rm -rf _build .pytest_cache
