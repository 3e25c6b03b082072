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

# The order of make test. The lab VM's scenarios (test-vfio) run beside everything that needs no VM
# and no model timing (lint, the module playbooks, the simulated PVE API, the nspawn guests): the
# TCG VM waits on SSH round trips most of the time, and no two of them share a lab state dir, port,
# name or subnet. make -O prints each target's output when it ends. Then, one after the other, the
# tests whose timing matters (unit tests with hypothesis deadlines, the service with the real model,
# the README's benchmark) and test-demo, which boots the VM a second time, alone, at the end.
LAB_SIDE_BY_SIDE := test-vfio lint test-modules test-pve test-guest
TEST_ORDER := test-lab test-lab-side-by-side test-unit test-service test-readme test-demo

.PHONY: test-lab-side-by-side
test-lab-side-by-side: setup ## test-vfio beside lint, test-modules, test-pve and test-guest (what make test runs)
	@t=$$SECONDS; $(MAKE) --no-print-directory -j2 -Otarget $(LAB_SIDE_BY_SIDE); \
	echo "test-lab-side-by-side: $(LAB_SIDE_BY_SIDE) in $$((SECONDS - t)) s"

test: setup $(TEST_ORDER) $(filter-out $(TEST_ORDER) $(LAB_SIDE_BY_SIDE),$(TEST_TARGETS)) ## install what is needed, then run every test and gate (what CI runs)
	@echo "make test: all green (lint test-unit $(TEST_TARGETS))"

lint: setup $(LINT_TARGETS) ## every lint gate: yamllint, ansible-lint, ansible-doc, changelog, ansible-test sanity
