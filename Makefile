# Every target does its own set-up: `make install` is idempotent and takes seconds once the
# wheelhouse (~/.cache/pdegen/wheelhouse) holds the source-built PETSc, petsc4py and mpi4py.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

install:
	@bash scripts/install.sh

demo: install
	$(BIN)/pdegen generate recipes/darcy-demo.yaml
	$(BIN)/pdegen inspect data/darcy-demo

test:
	@bash scripts/install.sh --test
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check pdegen solvers tests benchmarks scripts
	$(BIN)/ruff format --check pdegen solvers tests benchmarks scripts

bench: install  # one case; docs/benchmarks.md lists every command
	$(BIN)/python benchmarks/recycling.py darcy

clean:
	rm -rf data/darcy-demo .pytest_cache
