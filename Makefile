# homelab.gpu_passthrough: one entry point for setup, tests, lint and the demo.
# Each area adds its own targets in mk/<area>.mk and appends them to TEST_TARGETS.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
COLL_LINK := .collections/ansible_collections/homelab/gpu_passthrough
# Molecule keeps each scenario's state here (MOLECULE_EPHEMERAL_DIRECTORY), not in ~/.ansible/tmp,
# where it is keyed by the checkout's folder name: two clones called "main" would share it.
MOLECULE_STATE := $(CURDIR)/.cache/molecule
STAMP := $(VENV)/.stamp

# Each mk/*.mk appends to these.
TEST_TARGETS :=
LINT_TARGETS :=

.PHONY: help setup test lint test-unit
help: ## list the public targets with what each does (this list)
	@echo "make demo runs the main job on the local lab; make test runs what CI runs. All targets:"
	@grep -hE '^[a-z][a-zA-Z0-9_-]*:[^=]*## ' $(MAKEFILE_LIST) | sort -t: -k1,1 \
	  | awk -F':[^#]*## ' '{ printf "  make %-24s %s\n", $$1, $$2 }'

$(STAMP): requirements/dev.txt requirements/controller.txt requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -r requirements/dev.txt
	touch $@

$(COLL_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

setup: $(STAMP) $(COLL_LINK) ## create .venv with the pinned toolchain (requirements/) and link the collection

test-unit: setup ## unit tests of the plugins, the filters and the lab CLI helpers (pytest tests/unit)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

include $(sort $(wildcard mk/*.mk))

# The order of make test: first every Debian package any part needs (apt must not run twice at once)
# and test-lab (the images, built once and reused); then ONE pool of parts run two at a time
# (make -j2 -O prints each part's output when it ends). No two parts share a lab state dir, SSH port,
# name or subnet. The lab VM boots twice in all, one boot after the other in one lane
# (test-lab-vm: test-vfio, then test-demo), while the other lane takes the rest in order: lint and
# sanity, unit tests, module playbooks, the simulated PVE API, the README's static commands, the
# nspawn machines (guest roles, the load balancer, the systemd-boot path) and the service's tests
# with the real model.
POOL := test-lab-vm lint test-unit test-modules test-pve test-readme test-guest test-lb test-vfio-sdboot test-service
TEST_ORDER := test-apt test-lab test-pool

.PHONY: test-apt test-pool test-lab-vm
test-apt: ## the Debian packages of every test (lab, service tools, shellcheck), installed once up front
	lab/bin/lab deps
	@$(MAKE) --no-print-directory service-apt
	@command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }

test-lab-vm: setup ## the lab VM's two boots, one after the other: test-vfio, then test-demo
	@t=$$SECONDS; $(MAKE) --no-print-directory test-vfio; $(MAKE) --no-print-directory test-demo; \
	echo "test-lab-vm: test-vfio + test-demo in $$((SECONDS - t)) s"

test-pool: setup ## every test part after test-lab, two at a time (the lab VM's lane beside the rest)
	@t=$$SECONDS; $(MAKE) --no-print-directory -j2 -Otarget $(POOL); \
	echo "test-pool: $(POOL) in $$((SECONDS - t)) s"

test: setup $(TEST_ORDER) $(filter-out $(TEST_ORDER) $(POOL) test-vfio test-demo,$(TEST_TARGETS)) ## install what is needed, then run every test and gate (what CI runs)
	@echo "make test: all green (lint test-unit $(TEST_TARGETS))"

lint: setup $(LINT_TARGETS) ## every lint gate: yamllint, ansible-lint, ansible-doc, changelog, ansible-test sanity
