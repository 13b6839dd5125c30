# The two commands of the README: `make demo` and `make test`. Both set everything up
# on a fresh machine (Python 3.11 + pip); nothing needs installing by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: setup demo test lint bench peers generate clean

LOG    := $(VENV)/install.log

# pip's own output (and its warnings) goes to $(LOG); its path is printed if a step fails.
$(STAMP): pyproject.toml Makefile
	@echo "Setting up $(VENV) (pip's output: $(LOG)) ..."
	@$(PYTHON) -m venv $(VENV)
	@: > $(LOG)
	@# torch first, pinned: pip takes the CPU build from the local wheel directory.
	@for step in "--upgrade pip" "torch==2.13.0 numpy" \
	    "-e .[dev,ray,torch,energy,plot,wandb,examples,nemo-run]"; do \
	  $(BIN)/python -m pip install --quiet $$step >>$(LOG) 2>&1 || \
	    { echo "pip install $$step failed; see $(LOG):"; tail -n 20 $(LOG); exit 1; }; \
	done
	@touch $(STAMP)
	@echo "Set up $(VENV)."

setup: $(STAMP)

## demo: validate the examples, show what a typo looks like, then the main job: apply
## examples/tiny_gpt (a tiny GPT trained with DDP on CPU: 2 learning rates x 2 depths x 3
## cycles, energy measured; ~2-3 min on 2 cores), print its results and write the plot
demo: setup
	@$(BIN)/runspec validate examples/ specs/
	@tmp=$$(mktemp -d) && cp -r examples/quickstart/. $$tmp/ && \
	  sed -i -e 's/procs_per_node/procs_per_nod/' -e 's/"interleaved"/"interleave"/' $$tmp/run.toml && \
	  (cd $$tmp && $(CURDIR)/$(BIN)/runspec validate run.toml || true); rm -rf $$tmp
	@$(BIN)/runspec apply examples/tiny_gpt/run.toml --yes
	@$(BIN)/runspec apply examples/tiny_gpt/run.toml --yes
	@$(BIN)/runspec results examples/tiny_gpt/run.toml --plot examples/tiny_gpt/runs/tiny-gpt.png
	@$(BIN)/runspec artifacts -C examples/tiny_gpt lineage tiny-gpt-model
	@echo "Done: results above; plot in examples/tiny_gpt/runs/tiny-gpt.png; runs in examples/tiny_gpt/runs/."

## test: lint, type-check (mypy), check generated files, run the whole suite (integration
## tests start a real single-node Slurm and a real Ray head through tests/services/, and
## stop them after)
test: setup
	$(BIN)/ruff check runspec tests bench
	$(BIN)/mypy
	$(BIN)/runspec schema --check
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check runspec tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/validate_startup.py

## peers: runspec against submitit and Hydra, side by side (needs the test Slurm: started)
peers: setup
	@$(BIN)/python -m pip install --quiet -e ".[bench]" >>$(LOG) 2>&1 || \
	  { echo "pip install .[bench] failed; see $(LOG)"; tail -n 20 $(LOG); exit 1; }
	$(BIN)/python bench/peers.py

## generate: regenerate schemas/ and docs/ references from the models and commands
generate: setup
	$(BIN)/runspec schema
	$(BIN)/python -m runspec.docs

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
