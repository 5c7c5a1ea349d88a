# make book   build the Jupyter Book from the notebooks' stored outputs (warnings are errors)
# make test   everything CI checks: library tests and the notebooks on the smoke budget
# make lab    open JupyterLab on the notebooks (LAB_ARGS="--ip=0.0.0.0 --port=8890" to change)
# make setup  create .venv with the package and its dev extras (done automatically)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export NAE_DATA ?= $(abspath ../shared/datasets)
# JupyterLab refuses to run as root (containers, CI) unless told it may
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=
# the browser tests need Chromium (tests/test_browser.py runs $CHROMIUM), node and
# playwright-core in tests/browser/node_modules
export CHROMIUM ?= /usr/bin/chromium
PLAYWRIGHT := tests/browser/node_modules/playwright-core
BROWSER_SKIPPED := echo "note: the browser tests were skipped (they need Debian's chromium, nodejs and npm: \
apt-get install chromium nodejs npm, then make test)"

.PHONY: setup book lab test test-lib test-notebooks test-browser browser-deps bench pretrained clean

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
	@echo "JupyterLab on notebooks/: open the http://127.0.0.1:8888/lab?token=... address it prints below"
	@echo "(on a remote machine: ssh -L 8888:127.0.0.1:8888 HOST first); Ctrl-C stops it."
	$(VENV)/bin/jupyter lab notebooks/ --ServerApp.open_browser=False $(LAB_ROOT) $(LAB_ARGS)

test: setup test-lib test-notebooks

# installs playwright-core when chromium, node and npm are there; else the tests skip
browser-deps:
	@if [ -d $(PLAYWRIGHT) ] || ! command -v $(CHROMIUM) >/dev/null || ! command -v node >/dev/null \
	    || ! command -v npm >/dev/null; then :; \
	else npm install --prefix tests/browser --no-audit --no-fund --silent \
	    || echo "note: npm install --prefix tests/browser failed; the browser tests will skip"; fi

test-lib: setup browser-deps
	@$(PY) -m pytest tests -q -rs; rc=$$?; \
	[ -d $(PLAYWRIGHT) ] && command -v $(CHROMIUM) >/dev/null || $(BROWSER_SKIPPED); exit $$rc

test-notebooks: setup
	NAE_BUDGET=smoke $(PY) -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg notebooks -q -rs \
	    -p no:cacheprovider

test-browser: setup browser-deps
	$(PY) -m pytest tests -q -rs -m browser

bench: setup
	$(PY) benchmarks/bench_step.py --config mnist_ood

pretrained: setup
	$(PY) scripts/make_pretrained.py

clean:
	rm -rf _build .pytest_cache
