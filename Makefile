# The two quick-start commands:  `make repro` (set up + run the pipeline)  and  `make test`.
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PYTHONHASHSEED := 0

.PHONY: setup repro test
setup:
	@bash scripts/setup.sh

repro: setup
	dvc repro

test: setup
	python -m pytest
