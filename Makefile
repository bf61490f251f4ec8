# Two commands do everything: `make run` (the app on the demo corpus) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.shoal-installed
PORT   ?= 8501

.PHONY: setup test-deps run test test-fast lint bench clean

setup: $(STAMP)

# torch first, from its CPU wheel: a bare torch requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[local,fast,ray,test]"
	@$(BIN)/shoal warmup || echo "warm-up skipped: the first map will prepare the embedding backend itself"
	@touch $(STAMP)

# System packages the tests need (Debian): chromium + driver for the browser tests; node, a JDK, g++ and
# rustc for the execution sandbox's languages. Needs root or sudo; nothing is installed when all are present.
test-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "color emoji" \
	    || ! command -v node >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 \
	    || ! command -v g++ >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1 \
	    || ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji nodejs default-jdk-headless g++ rustc bubblewrap >/dev/null; \
	fi

run: setup
	$(BIN)/shoal app --demo --port $(PORT)

test: setup test-deps lint
	$(BIN)/python -m pytest

# The unit layer only (no browser, no llama.cpp, no subprocess journeys): a minute or two.
test-fast: setup lint
	$(BIN)/python -m pytest -m "not slow and not browser and not llama"

# ruff on the tree, mypy on core/ (config in pyproject.toml; cached in .mypy_cache, a cold run < 60 s)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -m mypy core

bench: setup test-deps
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache
