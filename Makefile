# The two set-up commands on a fresh machine are `make demo` and `make test`.
PY ?= python3
VENV := .venv
ORACLE := .venv-oracle
UPSTREAM := $(ORACLE)/jubatus-sdist
JUBAKIT := .venv-jubakit
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ZOOKEEPER_JAR := /usr/share/java/zookeeper.jar
CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint typecheck pytest regen bench zookeeper chromium oracle jubakit venv

demo: venv
	$(BIN)/python examples/kvs/demo.py

test: venv oracle jubakit zookeeper chromium lint typecheck pytest

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy
	cd generated/server && MYPYPATH=../.. ../../$(BIN)/mypy --config-file ../../pyproject.toml $$(ls *.py | grep -v tmpl)
	cd generated/python && MYPYPATH=../.. ../../$(BIN)/mypy --config-file ../../pyproject.toml -p clients
	cd generated/http && MYPYPATH=../.. ../../$(BIN)/mypy --config-file ../../pyproject.toml *.py
	cd examples/kvs && MYPYPATH=../.. ../../$(BIN)/mypy --config-file ../../pyproject.toml $$(ls *.py | grep -v tmpl)

pytest: venv
	$(BIN)/pytest

regen: venv
	$(BIN)/python -m jenerator.regen

bench: venv oracle
	$(BIN)/pip install -q -e '.[uvloop]'
	$(BIN)/python -m bench.parse
	$(BIN)/python -m bench.rpc
	$(BIN)/python -m bench.dispatch
	$(BIN)/python -m bench.kvs
	$(BIN)/python -m bench.cluster
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.mix
	$(BIN)/python -m bench.stalled
	$(BIN)/python -m bench.vs_jubatus
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.replicas
	$(BIN)/python -m bench.engines --write
	$(BIN)/python -m bench.abuse

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard engines/common/kernels_c/*)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The official jubatus client and msgpack-rpc-python need msgpack 0.5 and tornado 4.5:
# they live in a venv of their own and the tests drive them as subprocesses.
oracle: $(ORACLE)/.installed $(UPSTREAM)/.unpacked

$(ORACLE)/.installed:
	$(PY) -m venv $(ORACLE)
	$(ORACLE)/bin/pip install -q 'jubatus==1.1.0' 'msgpack-rpc-python==0.4.1' 'msgpack-python==0.5.6' 'tornado==4.5.3'
	touch $@

# The official client's own integration tests (its sdist's test/), which tests/compat runs
# against the engines' commands.
$(UPSTREAM)/.unpacked: $(ORACLE)/.installed
	$(ORACLE)/bin/pip download -q --no-deps --no-binary :all: 'jubatus==1.1.0' -d $(UPSTREAM)
	tar -xzf $(UPSTREAM)/jubatus-1.1.0.tar.gz -C $(UPSTREAM)
	touch $@

# jubakit 0.6.2 (Jubatus's toolkit: jubash, jubamodel) needs Python <= 3.9; tests/compat
# runs its own tests and tools against the engines' commands from a venv of its own, made
# with pyenv's 3.9 or python3.9 on PATH. Without either the target says so and those
# tests skip. Its sdist's jubakit/test/ (part of the git tree's) is unpacked beside it.
jubakit: $(JUBAKIT)/.installed

$(JUBAKIT)/.installed:
	@py=$$(ls -d $$HOME/.pyenv/versions/3.9*/bin/python 2>/dev/null | tail -n 1); \
	[ -n "$$py" ] || py=$$(command -v python3.9 || true); \
	if [ -z "$$py" ] || ! "$$py" -c 'import venv' 2>/dev/null; then \
		echo "no Python 3.9 found: jubakit's tests will skip"; exit 0; fi; \
	set -e; rm -rf $(JUBAKIT); "$$py" -m venv $(JUBAKIT); \
	$(JUBAKIT)/bin/pip install -q --disable-pip-version-check 'jubakit==0.6.2' 'jubatus==1.1.0' \
		'msgpack-rpc-python==0.4.1' 'msgpack-python==0.5.6' 'tornado==4.5.3' 'psutil'; \
	$(JUBAKIT)/bin/pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
		'jubakit==0.6.2' -d $(JUBAKIT)/jubakit-sdist; \
	tar -xzf $(JUBAKIT)/jubakit-sdist/jubakit-0.6.2.tar.gz -C $(JUBAKIT)/jubakit-sdist; \
	touch $@

zookeeper:
	@test -f $(ZOOKEEPER_JAR) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq zookeeper; }

# The browser test of the gateway's page drives Debian's chromium through Playwright.
chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
