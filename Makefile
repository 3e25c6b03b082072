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
help:
	@echo "make demo     - bring the local lab up and run playbooks/site.yml against it"
	@echo "make test     - install what is needed, then run every test and gate (what CI runs)"
	@echo "make setup    - create .venv with the pinned toolchain (requirements/)"
	@echo "make lint     - ansible-lint, yamllint, ansible-test sanity, ansible-doc"

$(STAMP): requirements/dev.txt requirements/controller.txt requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -r requirements/dev.txt
	touch $@

$(COLL_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

setup: $(STAMP) $(COLL_LINK)

test-unit: setup
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

include $(sort $(wildcard mk/*.mk))

# Cheap and fast first, the lab VM scenarios last.
TEST_ORDER := test-modules test-pve test-service test-readme test-guest test-lab test-vfio test-demo
test: setup lint test-unit $(foreach t,$(TEST_ORDER),$(filter $t,$(TEST_TARGETS))) $(filter-out $(TEST_ORDER),$(TEST_TARGETS))
	@echo "make test: all green (lint test-unit $(TEST_TARGETS))"

lint: setup $(LINT_TARGETS)
