# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs the runtime and the sample game, serves the default model and plays the village
#   make test   creates .venv, installs everything the tests need (Python extras, Mono, npm packages) and runs them
# Both are idempotent; a stamp file records what was installed for which pyproject.toml.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# CI sets CI=true: then a test whose external tool (mono, npm packages) is missing fails instead of skipping.
export NPC_REQUIRE_TOOLCHAINS ?= $(if $(filter true 1,$(CI)),1,0)

.PHONY: demo test serve venv-runtime venv-dev venv-genai toolchains model fixtures help clean

help:
	@echo "make demo        serve the default model and play the sample game (headless transcript without a display)"
	@echo "make test        install what the tests need and run the whole suite"
	@echo "make serve       serve the default model on tcp://127.0.0.1:5555"
	@echo "make model       rebuild the default model bundle from the recipe (trains 34-46 minutes on 2 quiet cores, then exports)"
	@echo "make fixtures    regenerate the protocol golden fixtures after a deliberate protocol change"
	@echo "make venv-genai  a separate .venv-genai with onnxruntime-genai and its model builder, for npc-runtime bench-hf"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.runtime-stamp: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[game]'
	touch $@

$(VENV)/.dev-stamp: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[export,game,test]'
	touch $@ $(VENV)/.runtime-stamp

venv-runtime: $(VENV)/.runtime-stamp
venv-dev: $(VENV)/.dev-stamp

# onnxruntime-genai needs the CPU onnxruntime package, which cannot share a venv with the runtime's
# onnxruntime-gpu, so the bring-your-own-model benchmark runs it from its own venv. Pinned versions;
# its model builder needs torch, transformers, onnx and onnx-ir.
GENAI_VENV ?= .venv-genai
GENAI_PACKAGES := onnxruntime-genai==0.18.0 onnxruntime==1.31.1 numpy==2.4.6 torch==2.13.0 \
	transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 onnx==1.23.2 onnx-ir==1.1.0 tqdm==4.70.1

$(GENAI_VENV)/.genai-stamp: Makefile
	$(PYTHON) -m venv $(GENAI_VENV)
	$(GENAI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(GENAI_VENV)/bin/python -m pip install --quiet $(GENAI_PACKAGES)
	touch $@

venv-genai: $(GENAI_VENV)/.genai-stamp

toolchains:
	bash engine_bridge/tools/install_toolchains.sh

demo: venv-runtime
	$(BIN)/python -m sample_game --spawn-server

serve: venv-runtime
	$(BIN)/npc-runtime serve

test: venv-dev toolchains
	$(BIN)/python -m pytest -q

# The preset stops cleanly after 57 minutes; on a machine slower than that, the resume finishes the run.
model: venv-dev
	$(BIN)/npc-runtime train --out runs/default
	@if grep -q '"stopped_early": true' runs/default/summary.json; then \
		$(BIN)/npc-runtime train --out runs/default --resume --max-minutes 60; fi
	$(BIN)/npc-runtime export --run runs/default

fixtures: venv-runtime
	$(BIN)/python -m engine_bridge.fixtures.generate

clean:
	rm -rf $(VENV) engine_bridge/.toolchain .pytest_cache
