# The single entry point. A newcomer needs two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
PYTHON ?= python3
TOOLS := .tools
UV := $(shell command -v uv >/dev/null 2>&1 && uv --version 2>/dev/null | grep -q ' $(UV_VERSION)' && command -v uv || echo $(TOOLS)/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
SERVICES := ingest_gmail ingest_outlook router sender
# kustomize is not on PyPI: built from the Go module proxy with the machine's Go, pinned here.
KUSTOMIZE_VERSION := v5.8.1
KUSTOMIZE := $(TOOLS)/go/kustomize-$(KUSTOMIZE_VERSION)
OVERLAYS := deploy/k8s/base deploy/k8s/overlays/production

.PHONY: help bootstrap install run test check lint fmt typecheck contracts schemas docs bench clean deploy-check

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

bootstrap: $(if $(filter $(TOOLS)/bin/uv,$(UV)),$(TOOLS)/bin/uv) ## Install the pinned uv if it is missing

install: bootstrap ## Install every workspace member and the dev tools from uv.lock
	$(UV) sync --frozen --all-packages

run: install ## Start the local stack and all four services (Ctrl-C stops everything)
	$(RUN) mailsync-devstack run

test: install ## Run the whole test suite against the real Kafka, MongoDB-wire server and Pub/Sub emulator
	$(RUN) mailsync-devstack fetch
	$(RUN) pytest $(PYTEST_ARGS)

check: lint typecheck contracts deploy-check ## Lint, format check, import layering, strict typing, contract and docs freshness

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports

fmt: install ## Format and auto-fix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

typecheck: install
	$(RUN) mypy libs/*/src services/*/src tests bench
	@# Test folders are checked one package at a time: each has its own conftest module.
	for tests in libs/*/tests services/*/tests; do $(RUN) mypy $$tests || exit 1; done
	$(RUN) mypy deploy

contracts: install ## Fail if the committed JSON Schemas or AsyncAPI documents are stale or incompatible
	$(RUN) python -m mailsync.common.contracts.schemas check
	$(RUN) python -m mailsync.common.asyncapi check $(SERVICES)
	$(RUN) python -m mailsync.common.contracts.catalog check
	$(RUN) python -m mailsync.common.settings_reference check $(SERVICES)

schemas: install ## Regenerate the JSON Schemas (refuses incompatible changes)
	$(RUN) python -m mailsync.common.contracts.schemas write

docs: install ## Regenerate docs/contracts.md and the AsyncAPI documents in docs/asyncapi/
	$(RUN) python -m mailsync.common.asyncapi write $(SERVICES)
	$(RUN) python -m mailsync.common.contracts.catalog write
	$(RUN) python -m mailsync.common.settings_reference write $(SERVICES)

$(KUSTOMIZE):
	@command -v go >/dev/null 2>&1 || { echo "deploy-check needs Go (1.24 or newer) to build kustomize" >&2; exit 1; }
	mkdir -p $(@D)
	GOBIN=$(abspath $(@D))/bin go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(@D)/bin/kustomize $@

deploy-check: install $(KUSTOMIZE) ## Lint the Dockerfiles, render and validate the Kubernetes manifests offline
	$(RUN) hadolint deploy/docker/*.Dockerfile
	$(RUN) python deploy/check_manifests.py --kustomize $(KUSTOMIZE) $(OVERLAYS)

bench: install ## Run the benchmarks (figures are ratios against a baseline measured in the same run)
	for bench in bench/*_bench.py; do $(RUN) python $$bench || exit 1; done

clean: ## Remove caches and the local tools
	rm -rf $(TOOLS) .venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
