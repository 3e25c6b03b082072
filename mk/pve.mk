# Proxmox VE API (issue 5): modules proxmox_pci_mapping / proxmox_node_pci_info / proxmox_vm and roles
# proxmox_pci_mapping / proxmox_gpu_vm against the simulated PVE API (tests/pve_simulator, HTTPS on
# 127.0.0.1). The unit tests tests/unit/test_pve_*.py run in test-unit; this target adds the playbook
# tests (check/real/repeat, roles converge + idempotence, no secret in -vvv) and the schema-copy check.
# ansible-lint and ansible-doc of the PVE modules and roles run in `make lint`, with everything else.
PVE_SHARED_SCHEMA ?= ../shared/data/proxmox

.PHONY: test-pve test-pve-schema test-pve-playbooks
test-pve: test-pve-schema test-pve-playbooks ## the Proxmox API modules and roles against the simulated PVE API, and the schema copy

test-pve-schema: setup ## the simulator's schema copy equals shared/data/proxmox
	@if [ -d "$(PVE_SHARED_SCHEMA)" ]; then \
	  $(BIN)/python tests/pve_simulator/schema/extract.py --check $(PVE_SHARED_SCHEMA); \
	else \
	  echo "test-pve-schema: $(PVE_SHARED_SCHEMA) not present; using the committed copy (tests/pve_simulator/schema/SOURCE.md)"; \
	fi

test-pve-playbooks: setup ## PVE playbook tests against the simulated PVE API (tests/integration/pve)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration/pve

TEST_TARGETS += test-pve
