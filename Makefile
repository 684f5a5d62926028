# ModelOps — every target is listed by `make help`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY) ## Create the virtualenv and install the package with test extras
	$(PY) -m pip install -q -e '.[test]'

cluster-binaries: ## Build (or reuse) kube-apiserver, controller-manager, scheduler, etcd and kwok
	tests/cluster/go/build.sh

cluster-up: venv cluster-binaries ## Start a local cluster in .cluster/ and print the KUBECONFIG to export
	$(PY) -m tests.cluster up --dir .cluster

cluster-down: ## Stop the local cluster started by cluster-up
	$(PY) -m tests.cluster down --dir .cluster

crds: venv ## Regenerate crds/ from the pydantic models
	$(PY) -m modelops.cli crds --write crds/ --readme README.md

lint: venv ## ruff check and format check
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench

unit: venv ## Fast tests of pure code, no cluster
	$(VENV)/bin/pytest tests/unit -q

test: venv cluster-binaries ## The whole suite: lint, unit, integration against a local cluster, e2e
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/pytest -q

.PHONY: help venv cluster-binaries cluster-up cluster-down crds lint unit test
