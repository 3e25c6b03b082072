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

# The order of make test: two stages, each running its parts side by side (make -j2 -O prints each
# part's output when it ends). No two parts share a lab state dir, SSH port, name or subnet.
#  1. the lab VM's scenarios (test-vfio, one boot) beside everything that needs no VM: lint and
#     sanity, unit tests, module playbooks, the simulated PVE API, the README's static commands, the
#     nspawn guests. The TCG VM waits on SSH round trips most of the time.
#  2. test-demo (make demo: the VM's second and last boot in CI) beside the service's tests with the
#     real model.
# Before them: every Debian package any part needs (apt must not run twice at once) and test-lab
# (the images, built once and reused by both stages).
STAGE_1 := test-vfio lint test-unit test-modules test-pve test-readme test-guest
STAGE_2 := test-demo test-service
TEST_ORDER := test-apt test-lab test-stage-1 test-stage-2

.PHONY: test-apt test-stage-1 test-stage-2
test-apt: ## the Debian packages of every test (lab, service tools, shellcheck), installed once up front
	lab/bin/lab deps
	@$(MAKE) --no-print-directory service-apt
	@command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }

test-stage-1: setup ## test-vfio beside lint, test-unit, test-modules, test-pve, test-readme, test-guest
	@t=$$SECONDS; $(MAKE) --no-print-directory -j2 -Otarget $(STAGE_1); \
	echo "test-stage-1: $(STAGE_1) in $$((SECONDS - t)) s"

test-stage-2: setup ## test-demo beside test-service
	@t=$$SECONDS; $(MAKE) --no-print-directory -j2 -Otarget $(STAGE_2); \
	echo "test-stage-2: $(STAGE_2) in $$((SECONDS - t)) s"

test: setup $(TEST_ORDER) $(filter-out $(TEST_ORDER) $(STAGE_1) $(STAGE_2),$(TEST_TARGETS)) ## install what is needed, then run every test and gate (what CI runs)
	@echo "make test: all green (lint test-unit $(TEST_TARGETS))"

lint: setup $(LINT_TARGETS) ## every lint gate: yamllint, ansible-lint, ansible-doc, changelog, ansible-test sanity
