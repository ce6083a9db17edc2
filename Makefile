# carvision: `make help` lists the targets. Everything runs inside .venv, created from requirements.lock.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Stage commands in dvc.yaml call `python`, `dvc` and `mlflow`: put the environment's first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)
UI_PORT ?= 5000
SERVE_PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install demo test test-slow evaluate pack ui serve export params lint format lock clean-outputs

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv from requirements.lock (installs uv with pip when missing)

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@UV=$$(command -v uv || echo "python3 -m uv"); \
	  set -e; \
	  [ -x $(PY) ] || $$UV venv --quiet --python 3.11 $(VENV); \
	  $$UV pip install --quiet --python $(PY) -r requirements.lock; \
	  $$UV pip install --quiet --python $(PY) --no-deps -e .
	@# Bytecode now, once: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) every python process would
	@# otherwise compile torch, lightning and mlflow anew (~12 s a stage). Packages' own test folders are skipped.
	$(PY) -m compileall -q -j 0 -x '/(tests?|testing)/' $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") >/dev/null \
	  || echo "install: some files of the environment did not compile (another Python's syntax); Python compiles them when they are imported"
	@touch $@

demo: install ## run the whole pipeline (sample -> ... -> evaluate -> registry) on the embedded sample
	$(PY) -m carvision.config --check || $(PY) -m carvision.config
	dvc repro
	$(PY) -m carvision.summary

test: install ## run the test suite (CPU only, < 10 min on 2 cores)
	$(PY) -m pytest -q

test-slow: install ## run the slow end-to-end tests too
	$(PY) -m pytest -q -m "slow or not slow"

evaluate: install ## evaluate the trained model on the test split and register it if it passes the gate
	dvc repro evaluate
	$(PY) -m carvision.summary

pack: install ## write each task's split manifest as LitData shards (pipelines/pack), for data.format=litdata
	dvc repro pipelines/pack/dvc.yaml

ui: install ## open the MLflow UI on http://127.0.0.1:$(UI_PORT)
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port $(UI_PORT)

serve: install ## the API and upload page on http://127.0.0.1:8000 (SERVE_PORT=...; models: the registry champions)
	$(VENV)/bin/carvision serve --host 127.0.0.1 --port $(SERVE_PORT)

export: install ## export every task's champion to ONNX, fp32 and int8, with parity checks (exports/<task>/)
	for t in car_filter make_model viewpoint; do $(PY) -m carvision.export --task $$t --int8 || exit 1; done

params: install ## recompose params.yaml from conf/
	$(PY) -m carvision.config

lint: install ## ruff lint and format check
	ruff check . && ruff format --check .

format: install ## ruff fix and format
	ruff check --fix . && ruff format .

lock: ## re-pin requirements.lock from pyproject.toml (hashes, no URLs)
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --no-header -o requirements.lock

clean-outputs: ## delete pipeline outputs, MLflow store and Hydra runs (keeps .venv)
	rm -rf data models reports mlflow.db mlruns outputs multirun exports .train-state
