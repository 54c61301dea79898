# `make demo` and `make test` set up everything they need (the virtual environment included).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo-out

.PHONY: demo test venv clean benchmarks

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/faceveil sample $(DEMO)/sample-archive
	$(BIN)/faceveil anonymize $(DEMO)/sample-archive $(DEMO)/anonymized

test: $(STAMP)
	$(BIN)/python -m pytest

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/detection.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/index.py --n 1000000

clean:
	rm -rf $(DEMO) .pytest_cache
