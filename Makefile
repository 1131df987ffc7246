# The map of the pipeline: README.md ("The map of the pipeline"); the code's layout: docs/architecture.md.
# `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
# an optional feature's packages (pyproject.toml's extras), installed for the targets that use it
# (.venv/.extra-<name>); `make test` and `make lock` install them all
EXTRAS := $(addprefix $(VENV)/.extra-,ray postgres auth notebooks bench)
# the same path as pipeline/layout.py's STORE_STAMP (a test keeps them equal)
STORE_STAMP := mlruns/.initialized
# Each stage's code prerequisites are computed (the modules it imports) into .build/pipeline.mk,
# which is regenerated when any module changes.
PIPELINE_CODE := $(shell find pipeline -name '*.py' 2>/dev/null)
TRAIN_FLAGS ?=
CURVE_FLAGS ?=
EXECUTOR ?= processes
# the same path as pipeline/layout.py's TRAIN_QUEUE (a test keeps them equal)
TRAIN_QUEUE := .build/train-queue
EXP ?=
SWEEP_FLAGS ?=

export MLFLOW_DISABLE_TELEMETRY := true
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONUNBUFFERED := 1
# VERBOSE=1: Keras per-epoch lines and library INFO lines (make train-all VERBOSE=1 works too)
export VERBOSE
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: help venv data train-all transfer-curve store ui test lint clean lock retrain predict serve report server bench sweep lecture soak test-fast notebooks notebooks-render

help: ## show this help
	@echo "Keras 3 / TensorFlow pipeline with MLflow tracking. Start with: make train-all"
	@echo
	@grep -hE '^[a-zA-Z_%-]+:.*?## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | \
		awk -F'\t' '{printf "  make %-22s %s\n", $$1, $$2}'
	@echo
	@echo "  One experiment with overrides:  $(PY) -m pipeline train cnn-same --set train.epochs=5"
	@echo "  Experiments in params.yaml:     $(PY) -m pipeline list"
	@echo "  bench, soak:                    benchmarks/, outside the package ($(PY) -m benchmarks --help)"

# ---------------------------------------------------------------------------- set-up
venv: $(VENV_STAMP) ## create .venv from pyproject.toml (pinned by requirements.lock)

# A .venv copied or moved along with the project runs the old folder's code (its editable install
# and its scripts' #! lines name that folder). Python's venv records where it made it
# (pyvenv.cfg's `command`, read here without a process); a .venv made elsewhere is made again.
VENV_MADE := $(file < $(VENV)/pyvenv.cfg)
ifneq ($(findstring -m venv /,$(VENV_MADE)),)
ifeq ($(findstring -m venv $(CURDIR)/$(VENV),$(VENV_MADE)),)
$(VENV_STAMP): venv-moved
endif
endif

.PHONY: venv-moved
venv-moved:
	@echo "$(VENV) was made in another folder ($(lastword $(filter %/$(VENV),$(VENV_MADE)))): making it again here"
	rm -rf $(VENV)

$(VENV_STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

# the project is installed already: this adds the extra's packages only, at the locked versions
$(VENV)/.extra-%: $(VENV_STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock 'dl-pipeline[$*]'
	@touch $@

lock: $(VENV_STAMP) $(EXTRAS) ## regenerate requirements.lock from the current .venv (every extra installed)
	@{ sed -n '1,2p' requirements.lock; $(PY) -m pip freeze --exclude-editable; } > requirements.lock.new
	@mv requirements.lock.new requirements.lock && echo "requirements.lock updated"

# ---------------------------------------------------------------------------- pipeline stages
# The per-dataset and per-experiment rules are generated from params.yaml (and regenerated
# whenever it changes); only the goals that need them read them.
ifneq ($(filter data data-% train-% train-all transfer-curve,$(MAKECMDGOALS)),)
include .build/pipeline.mk
endif

.build/pipeline.mk: params.yaml $(PIPELINE_CODE) | $(VENV_STAMP)
	@$(PY) -m pipeline makefile --out $@

data: $(VENV_STAMP) $(addsuffix /manifest.json,$(addprefix data/processed/,$(DATASETS))) ## validate, split and cache every dataset in params.yaml

train-%: $(VENV_STAMP) ## train one experiment, e.g. make train-cnn-same (skipped when up to date)
	@# only reached for names params.yaml does not define: the pipeline says which exist
	$(PY) -m pipeline train $*

# train-all: make finds what is out of date (each stale experiment's rule only queues its name:
# QUEUE is set for train-all's prerequisites), then one `pipeline train-all` trains the queue in a
# few worker processes: one TensorFlow start per core instead of one per experiment.
ifneq ($(filter train-all,$(MAKECMDGOALS)),)
# EXECUTORS comes from .build/pipeline.mk (pipeline/workflows owns the list); while make
# regenerates that file it is empty, and the check runs once make has reread it
ifneq ($(EXECUTORS),)
ifeq ($(filter $(EXECUTOR),$(EXECUTORS)),)
$(error EXECUTOR=$(EXECUTOR): expected one of $(EXECUTORS) (default: $(firstword $(EXECUTORS))))
endif
endif
$(shell rm -f $(TRAIN_QUEUE))
endif
train-all: QUEUE := 1
train-all: $(if $(filter ray,$(EXECUTOR)),$(VENV)/.extra-ray)  # the ray extra, for EXECUTOR=ray only
train-all: $(addprefix train-,$(EXPERIMENTS)) ## train every experiment in params.yaml (only what changed; EXECUTOR=sequential|ray)
	@if [ -s $(TRAIN_QUEUE) ]; then $(PY) -m pipeline train-all --executor $(EXECUTOR) --queue $(TRAIN_QUEUE) $(TRAIN_FLAGS); fi
	@echo "train-all: $(words $(EXPERIMENTS)) experiments up to date · browse them with: make ui"

ifneq ($(filter sweep,$(MAKECMDGOALS)),)
ifeq ($(EXP),)
$(error name the experiment: make sweep EXP=<experiment> (one with a search: block))
endif
endif
sweep: export PIPELINE_SWEEP_EXP = $(value EXP)
sweep: $(VENV_STAMP) $(VENV)/.extra-ray $(STORE_STAMP) ## Ray Tune search over an experiment's search: block, e.g. make sweep EXP=cnn-same (SWEEP_FLAGS=...)
	$(PY) -m pipeline sweep "$$PIPELINE_SWEEP_EXP" $(SWEEP_FLAGS)

transfer-curve: train-pretrain ## transfer learning curve: scratch vs transfer per labels/class (CURVE_FLAGS=...)
	$(PY) -m pipeline transfer-curve $(CURVE_FLAGS)

EXAMPLES ?=
lecture: $(VENV_STAMP) ## the lecture's worked examples as matrices + MLflow runs in `lecture` (EXAMPLES="conv-stride pooling")
	$(PY) -m pipeline lecture $(EXAMPLES)

# the kernel runs in notebooks/: PIPELINE_ROOT keeps the project (params.yaml, data/, mlruns/) here
notebooks: export PIPELINE_ROOT = $(CURDIR)
notebooks: $(VENV)/.extra-notebooks ## the lecture as notebooks: JupyterLab on 127.0.0.1 with the project's kernel (PORT=8888)
	$(PY) -m jupyter lab --ip 127.0.0.1 --port $${PORT:-8888} --ServerApp.root_dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

NOTEBOOKS ?=
NOTEBOOK_SETTINGS ?=
# trained first (train-all trains only what changed): the pages compare the student's runs with the project's
notebooks-render: train-all $(VENV)/.extra-notebooks ## run the notebooks here and write docs/notebooks/*.md with their figures (NOTEBOOKS="02_convolutional_networks", NOTEBOOK_SETTINGS="EPOCHS = 3; LIMIT = 500")
	$(PY) -m pipeline.lecture.render --settings "$(NOTEBOOK_SETTINGS)" $(NOTEBOOKS)

store: $(STORE_STAMP) ## create the MLflow store and its experiments (done before parallel runs)

$(STORE_STAMP): | $(VENV_STAMP)
	$(PY) -m pipeline init-store
	@touch $@

ui: $(VENV_STAMP) ## serve the MLflow UI on 127.0.0.1:5000 and print links to each task's runs
	$(PY) -m pipeline ui --port $${PORT:-5000}

report: $(VENV_STAMP) ## write reports/index.html + summary.md comparing the latest run of every experiment
	$(PY) -m pipeline report

BENCH_FLAGS ?=
bench: $(VENV_STAMP) ## benchmarks → reports/bench.{json,md} + MLflow experiment `benchmarks` (several minutes; BENCH_FLAGS="--only scale": the scale section, hours)
	$(PY) -m benchmarks bench $(BENCH_FLAGS)

SOAK_FLAGS ?=
soak: $(VENV_STAMP) ## retrain soak test: 50 cycles, hostile batches, kills; invariants → reports/soak.json (SOAK_FLAGS=…)
	$(PY) -m benchmarks soak $(SOAK_FLAGS)

ifneq ($(value DB),)
# DB may hold a password, with any character ($, quotes): handed on unexpanded, in the environment,
# never on a command line (`ps` shows those to every user). Give it as DB=… before `make`, not after.
server: export MLFLOW_BACKEND_STORE_URI = $(value DB)
endif
server: $(VENV_STAMP) $(if $(value DB),$(VENV)/.extra-postgres) $(if $(filter 1 yes true,$(AUTH)),$(VENV)/.extra-auth) ## shared MLflow tracking server (PORT=, HOST= (127.0.0.1), DB=postgresql://… in the environment, ARTIFACTS=, AUTH=1: users and passwords)
	@$(PY) -m pipeline server --port $${PORT:-5000} \
		$(if $(HOST),--host '$(HOST)') $(if $(ARTIFACTS),--artifacts '$(ARTIFACTS)') \
		$(if $(filter 1 yes true,$(AUTH)),--auth)

# ---------------------------------------------------------------------------- production
retrain: $(VENV_STAMP) $(STORE_STAMP) ## one retraining cycle: data/incoming/ batches → challenger → gate → champion
	$(PY) -m pipeline retrain

INPUT ?=
OUTPUT ?= predictions.csv
MODEL ?= digits-classifier
MAX_UNREADABLE ?= 0
# the values reach the command through the environment, so quotes, spaces and $ arrive as typed (and
# its messages name these variables: it sees that make started it)
predict: export PIPELINE_PREDICT_MODEL = $(value MODEL)
predict: export PIPELINE_PREDICT_INPUT = $(value INPUT)
predict: export PIPELINE_PREDICT_OUTPUT = $(value OUTPUT)
predict: export PIPELINE_PREDICT_MAX_UNREADABLE = $(value MAX_UNREADABLE)
predict: $(VENV_STAMP) ## batch prediction: make predict INPUT=<image folder or CSV> [MODEL=<registered model, experiment or run id>] [OUTPUT=…] [MAX_UNREADABLE=N]
	$(PY) -m pipeline predict --model "$$PIPELINE_PREDICT_MODEL" --input "$$PIPELINE_PREDICT_INPUT" \
		--output "$$PIPELINE_PREDICT_OUTPUT" --max-unreadable "$$PIPELINE_PREDICT_MAX_UNREADABLE"

SERVE_MODEL ?= digits-classifier
ALIAS ?= champion
SERVE_FLAGS ?=
# the names reach the command through the environment, so they arrive as typed (the command checks them)
serve: export PIPELINE_SERVE_MODEL = $(value SERVE_MODEL)
serve: export PIPELINE_SERVE_ALIAS = $(value ALIAS)
serve: export PIPELINE_SERVE_PORT = $(or $(value PORT),5001)
serve: export PIPELINE_SERVE_HOST = $(or $(value HOST),127.0.0.1)
serve: $(VENV_STAMP) $(STORE_STAMP) ## serve a registered model over HTTP (MLflow scoring protocol, follows champion): make serve [SERVE_MODEL=co2-forecaster] [ALIAS=] [PORT=5001] [HOST=]
	$(PY) -m pipeline serve "$$PIPELINE_SERVE_MODEL" --alias "$$PIPELINE_SERVE_ALIAS" \
		--port "$$PIPELINE_SERVE_PORT" --host "$$PIPELINE_SERVE_HOST" $(SERVE_FLAGS)

# ---------------------------------------------------------------------------- quality
# pytest-xdist workers: one per core (tests that share nothing run side by side)
TEST_JOBS ?= auto
test: $(VENV_STAMP) $(EXTRAS) ## run the test suite (what .ci/run calls; TEST_JOBS=1 for one process, PYTEST_ARGS=…)
	$(PY) -m pytest -n $(TEST_JOBS) --dist worksteal $(PYTEST_ARGS)

test-fast: $(VENV_STAMP) $(EXTRAS) ## the inner loop: unit tests only (no test marked integration or slow)
	$(PY) -m pytest -n $(TEST_JOBS) --dist worksteal -m "not slow and not integration" $(PYTEST_ARGS)

lint: $(VENV_STAMP) ## ruff check and ruff format --check
	$(PY) -m ruff check pipeline tests benchmarks
	$(PY) -m ruff format --check pipeline tests benchmarks

clean: ## remove generated data, the local MLflow store, hub modules, reports and build stamps (keeps .venv)
	rm -rf .build data/processed mlruns models/hub reports
