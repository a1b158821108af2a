# Container targets (included by the root Makefile).
#   make images [OFFLINE=1]            build heart-inference:full, :slim, :distroless
#   make push REGISTRY=host/namespace  tag and push the three (and :latest = distroless)
# DOCKER picks the client (BuildKit is required: DOCKER=/usr/bin/docker on Debian's docker.io);
# PIP_CERT=/path/to/ca-bundle.crt hands pip a CA bundle as a BuildKit secret (never a layer).

DOCKER ?= docker
IMAGE ?= heart-inference
VARIANTS := full slim distroless
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' online_inference/__init__.py)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE ?= https://github.com/heart-online-inference/heart-online-inference
export DOCKER_BUILDKIT := 1

ifeq ($(OFFLINE),1)
# Stand-ins built from Debian's packages (online_inference/docker/stand_in_bases.sh).
FULL_BASE ?= standin/python:3.11
SLIM_BASE ?= standin/python:3.11-slim
DISTROLESS_BUILDER ?= standin/python:3.11-slim
DISTROLESS_BASE ?= standin/distroless-python3-debian12:nonroot
else
FULL_BASE ?= python:3.11
SLIM_BASE ?= python:3.11-slim
DISTROLESS_BUILDER ?= debian:12-slim
DISTROLESS_BASE ?= gcr.io/distroless/python3-debian12:nonroot
endif

comma := ,
BUILD_ARGS := --network host --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	--build-arg SOURCE=$(SOURCE) $(if $(PIP_CERT),--secret id=pip_cert$(comma)src=$(PIP_CERT))
ARGS_full := --build-arg BASE_IMAGE=$(FULL_BASE)
ARGS_slim := --build-arg BASE_IMAGE=$(SLIM_BASE)
ARGS_distroless := --build-arg BUILDER_IMAGE=$(DISTROLESS_BUILDER) --build-arg BASE_IMAGE=$(DISTROLESS_BASE)
FILE_full := online_inference/Dockerfile
FILE_slim := online_inference/Dockerfile.slim
FILE_distroless := online_inference/Dockerfile.distroless

.PHONY: images bases push size-report numpy-wheel $(addprefix image-,$(VARIANTS))

# The image-size study: builds every step, measures it, writes online_inference/SIZE_REPORT.md.
size-report: $(VENV)/.dev bases
	$(PY) -m online_inference.docker.size_study
	$(PY) -m online_inference.devtools.docs

bases:
ifeq ($(OFFLINE),1)
	DOCKER=$(DOCKER) STANDIN_FULL=$(FULL_BASE) STANDIN_SLIM=$(SLIM_BASE) STANDIN_DISTROLESS=$(DISTROLESS_BASE) \
		online_inference/docker/stand_in_bases.sh
endif

images: $(addprefix image-,$(VARIANTS))

$(addprefix image-,$(VARIANTS)): image-%: bases
	$(DOCKER) build $(BUILD_ARGS) $(ARGS_$*) $(EXTRA_BUILD_ARGS) -f $(FILE_$*) -t $(IMAGE):$*$(TAG_SUFFIX) .

# numpy's wheel as the slim image builds it (without BLAS), for `make bench`: BuildKit's cached
# numpy-source stage, exported to NUMPY_WHEEL_DIR.
NUMPY_WHEEL_DIR ?= $(VENV)/numpy-wheel
numpy-wheel: bases
	rm -rf $(NUMPY_WHEEL_DIR)
	$(DOCKER) build $(BUILD_ARGS) $(ARGS_slim) --target numpy-wheel --output type=local,dest=$(NUMPY_WHEEL_DIR) -f $(FILE_slim) .

push:
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=docker.io/<user> (or 127.0.0.1:5000/ns)"; exit 2; }
	set -e; for v in $(VARIANTS); do \
		$(DOCKER) tag $(IMAGE):$$v $(REGISTRY)/$(IMAGE):$$v; \
		$(DOCKER) push $(REGISTRY)/$(IMAGE):$$v; \
	done; \
	$(DOCKER) tag $(IMAGE):distroless $(REGISTRY)/$(IMAGE):latest; \
	$(DOCKER) push $(REGISTRY)/$(IMAGE):latest
