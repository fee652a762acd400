# The README's two commands: `make run` and `make test`.  Both create .venv and
# install everything on first use; later runs skip installation unless
# pyproject.toml or scripts/setup.sh changed.
VENV ?= .venv
STAMP := $(VENV)/.spark-tui-installed

.PHONY: run test setup lint bench clean-venv e2e

run: $(STAMP)
	$(VENV)/bin/spark-tui

# The tmux walkthrough runs first so pytest's summary is the last line printed.
test: $(STAMP)
	@if command -v tmux >/dev/null 2>&1; then \
		PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash tests/e2e/tmux_walkthrough.sh; \
	else \
		echo "tmux not installed: skipping tests/e2e/tmux_walkthrough.sh"; \
	fi
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	@touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check spark_tui tests bench
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(VENV)/bin/python bench/run_all.py
	$(VENV)/bin/python bench/data_prep.py
	$(VENV)/bin/python bench/memory_estimate.py
	$(VENV)/bin/python bench/deploy_memory.py

clean-venv:
	rm -rf $(VENV)
