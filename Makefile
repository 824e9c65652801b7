# Two entry points on a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: test lint unit bench soak demo clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Lint, type-check, then the whole suite. Tests that need a service skip on a laptop without
# it, and fail under CI=true.
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# watchdogd rolls a broken release back, in about 15 s, with no Docker engine needed.
# Other faults and containers: make demo DEMO_ARGS="--fault crash --docker"
demo: $(BIN)/.installed
	$(BIN)/watchdogd demo $(DEMO_ARGS)

unit: $(BIN)/.installed
	$(BIN)/pytest tests/core tests/config

# Every benchmark, one table (~35 min; BENCH_ARGS=--quick for ~6 min). See BENCHMARKS.md.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# The chaos soak: a real engine and daemon, random seeded events, invariants checked (30 min).
# SOAK_ARGS="--minutes 3 --seed 16" is CI's run; see BENCHMARKS.md.
soak: $(BIN)/.installed
	$(BIN)/python benchmarks/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
