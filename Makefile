# ModelOps — every target is listed by `make help`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# kubectl: the system's when it has one; else the one `make kubectl` builds (cached). Its folder goes
# at the END of PATH, so it is used only when no other kubectl is found.
KUBECTL_DIR := $(shell tests/cluster/go/build.sh --kubectl-dir)
export PATH := $(abspath $(VENV))/bin:$(PATH):$(KUBECTL_DIR)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY) ## Create the virtualenv and install the package with test extras
	$(PY) -m pip install -q -e '.[test]'

# command (or file) -> Debian package; the second group is for the real node and the image builds.
DEB_DEPS := prometheus:prometheus \
  containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins iptables:iptables \
  conntrack:conntrack debootstrap:debootstrap buildah:buildah

deps: kubectl ## Debian packages: prometheus, and containerd, runc, CNI, iptables, buildah... for the real node; kubectl
	@missing=""; for pair in $(DEB_DEPS); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  if [[ $$cmd == /* ]]; then [[ -e $$cmd ]] || missing="$$missing $$pkg"; \
	  else command -v $$cmd >/dev/null || [[ -x /usr/sbin/$$cmd ]] || missing="$$missing $$pkg"; fi; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  systemctl disable --now prometheus >/dev/null 2>&1 || pkill -x prometheus || true; \
	  systemctl disable --now containerd >/dev/null 2>&1 || true; \
	fi

kubectl: ## kubectl at the control plane's release, from its own wrapper module (cached), unless the system has one
	@command -v kubectl >/dev/null || tests/cluster/go/build.sh --kubectl >/dev/null

demo: deps venv cluster-binaries $(if $(KWOK),,node-binaries image) ## The whole life of one model on a real node, narrated (ARGS=--keep; KWOK=1: kwok + stand-in, no root)
	$(PY) examples/demo.py $(ARGS) $(if $(KWOK),--kwok)

cluster-binaries: ## Build (or reuse) kube-apiserver, controller-manager, scheduler, etcd and kwok
	tests/cluster/go/build.sh

seaweedfs: ## Build (or reuse) SeaweedFS's weed, the S3 server the storage tests run against
	tests/cluster/go/build-seaweedfs.sh

helm: ## Build (or reuse) the helm CLI from its Go module, for the chart tests
	tests/cluster/go/build-helm.sh

harnesses: ## Build (or reuse) the Go harnesses that check the dashboard (Grafana's schema) and health checks (Argo CD's Lua)
	@tests/cluster/go/build-harness.sh grafana-schema
	@tests/cluster/go/build-harness.sh argocd-health

node-binaries: ## Also build (or reuse) kubelet, kube-proxy, and Prometheus with kubernetes_sd, for the real node
	tests/cluster/go/build.sh --node
	tests/cluster/go/build.sh --prometheus

image: deps ## Build (or reuse) pause, base and project images with buildah (OCI archives in ~/.cache/modelops/images)
	tests/cluster/node/images.sh all

cluster-up: venv cluster-binaries kubectl ## Start a local cluster in .cluster/ and print the KUBECONFIG to export (REAL_NODE=1: a real node)
	$(PY) -m tests.cluster up --dir .cluster $(if $(REAL_NODE),--real-node --timeout 900)

cluster-down: ## Stop the local cluster started by cluster-up
	$(PY) -m tests.cluster down --dir .cluster

crds: venv ## Regenerate crds/ and the README's field reference from the pydantic models
	$(PY) -m modelops.cli crds --write crds/ --readme README.md

chart: venv kubectl ## Regenerate the Helm chart charts/modelops from the kustomize tree (manifests/)
	$(PY) -m modelops.cli chart --write charts/modelops

lint: venv ## ruff check and format check
	$(VENV)/bin/ruff check operator tests bench examples
	$(VENV)/bin/ruff format --check operator tests bench examples

unit: venv harnesses ## Fast tests of pure code, no cluster
	$(VENV)/bin/pytest tests/unit -q

# Builds that only later tests need run niced beside the suite, in the order the suite reaches them
# (testpaths: integration, unit, e2e): helm (chart tests), SeaweedFS (S3 tests), the harnesses (unit),
# then the real node's kubelet, kube-proxy, Prometheus and images (e2e). Each build holds its own
# lock, so a test that gets there first waits for it rather than building twice. Cold, this took
# the run from 68 to 50 minutes; warm, every build returns at once. MODELOPS_REAL_NODE=0 skips the
# node's builds and the real-node tests.
REAL_NODE_BUILDS := $(if $(filter 0,$(MODELOPS_REAL_NODE)),,node-binaries image)
LATE_BUILDS := helm seaweedfs harnesses $(REAL_NODE_BUILDS)
LATE_LOG := $(VENV)/late-builds.log
# Not $(MAKE) in the recipe: make -n would then run the whole line, pytest included.
SUBMAKE = $(MAKE)

test: deps venv cluster-binaries lint ## The whole suite: lint, integration against a local cluster, unit, e2e
	@nice -n 19 $(SUBMAKE) --no-print-directory $(LATE_BUILDS) >$(LATE_LOG) 2>&1 & builds=$$!; \
	trap 'kill $$builds 2>/dev/null || true' INT TERM; \
	echo "[test] building $(LATE_BUILDS) beside the tests (log: $(LATE_LOG))"; \
	rc=0; $(VENV)/bin/pytest -q || rc=$$?; \
	if ! wait $$builds; then echo "[test] a build beside the tests failed:"; tail -30 $(LATE_LOG); rc=1; fi; \
	grep -E '^\[build' $(LATE_LOG) || true; \
	exit $$rc

bench: venv ## Server benchmark: modelops serve vs in-process predict vs MLServer (writes bench/results)
	$(PY) bench/serve_bench.py

drift-power: venv ## Drift rule on simulated data: false alarms and power (writes bench/results/drift-power.md)
	$(PY) bench/drift_power.py

.PHONY: help venv deps kubectl demo cluster-binaries seaweedfs helm harnesses node-binaries image cluster-up cluster-down crds chart lint unit test bench drift-power
