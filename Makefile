# hubflow: the two quick-start commands (README) and the helpers they use.
# `make demo` installs everything into .venv and starts the hub in local mode on http://127.0.0.1:8000.
# `make test` installs everything into .venv and runs the whole test suite (lint, types, tests).

VENV ?= .venv
PY := $(VENV)/bin/python
PROXY_VERSION := 5.3.0

.PHONY: setup browser demo test lint bench clean

setup: $(VENV)/.hubflow-installed

$(VENV)/.hubflow-installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,torch]'
	npm install --silent --no-save --no-audit --no-fund --prefix $(VENV) configurable-http-proxy@$(PROXY_VERSION)
	touch $@

demo: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/jupyterhub -f jupyterhub_config.py

# mypy checks the packages by their import names: build/mypy-src/hubflow/* link to the folders.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	mkdir -p build/mypy-src/hubflow
	for d in hub spawner profiles launcher; do ln -sfn ../../../$$d build/mypy-src/hubflow/$$d; done
	MYPYPATH=build/mypy-src $(VENV)/bin/mypy -p hubflow

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
browser:
	test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

test: lint browser
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/launcher_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
