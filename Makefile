# One entry point for everything: `make demo` and `make test` create or reuse .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest schemas bench mutation clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[gateway,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: $(STAMP)
	$(BIN)/mypy sdk/xinyong gateway/xinyong_gateway

pytest: $(STAMP)
	$(BIN)/pytest -n auto

# Regenerate the checked-in JSON Schemas from the wire models.
schemas: $(STAMP)
	$(BIN)/python -m xinyong.schemas schemas

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

# Mutation testing of the pure credit core (credit/engine.py, credit/policy.py; see [tool.mutmut] in pyproject.toml).
# Not part of `make test`: it runs the relevant tests once per mutant. MUTANTS narrows it to names matching a pattern
# (`make mutation MUTANTS='xinyong_gateway.credit.policy.*'`), MUTATION_JOBS sets the parallel runs. The surviving
# mutants are listed at the end; `cd .mutation && ../.venv/bin/mutmut show NAME` shows one.
MUTANTS ?=
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	rm -rf .mutation && mkdir -p .mutation/src
	cp -r sdk/xinyong gateway/xinyong_gateway .mutation/src/
	cp -r tests pyproject.toml .mutation/
	cd .mutation && HYPOTHESIS_PROFILE=ci ../$(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	cd .mutation && ../$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache .mutation
