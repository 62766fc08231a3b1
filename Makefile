# The README's two commands: `make run` and `make test`. Both are idempotent.
.PHONY: run test lint bootstrap bootstrap-test bench

VENV := .venv/bin

bootstrap:
	@scripts/bootstrap.sh

bootstrap-test:
	@scripts/bootstrap.sh --test

run: bootstrap
	@$(VENV)/coffre init >/dev/null
	@scripts/first-steps.sh
	@$(VENV)/coffre serve

lint: bootstrap-test
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports
	$(VENV)/mypy storage archive capture workflow accounting_bridge coffre

test: lint
	$(VENV)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: bootstrap-test
	$(VENV)/python bench/archive.py
	$(VENV)/python bench/einvoice.py
	$(VENV)/python bench/einvoice_validation.py
	$(VENV)/python bench/capture.py
	$(VENV)/python bench/extraction.py
	$(VENV)/python bench/search.py
	$(VENV)/python bench/integrity.py
