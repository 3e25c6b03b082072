# Proxmox VE API (issue 5): modules proxmox_pci_mapping / proxmox_node_pci_info / proxmox_vm and roles
# proxmox_pci_mapping / proxmox_gpu_vm against the simulated PVE API (tests/pve_simulator, HTTPS on
# 127.0.0.1). The unit tests tests/unit/test_pve_*.py run in test-unit; this target adds the playbook
# tests (check/real/repeat, roles converge + idempotence, no secret in -vvv), the schema-copy check
# and ansible-lint of the PVE paths.
PVE_SHARED_SCHEMA ?= ../shared/data/proxmox
PVE_LINT_PATHS := roles/proxmox_pci_mapping roles/proxmox_gpu_vm tests/integration/pve \
	plugins/modules/proxmox_pci_mapping.py plugins/modules/proxmox_node_pci_info.py plugins/modules/proxmox_vm.py

.PHONY: test-pve test-pve-schema test-pve-playbooks lint-pve
test-pve: test-pve-schema test-pve-playbooks lint-pve ## the Proxmox API modules and roles against the simulated PVE API, schema copy, lint

test-pve-schema: setup ## the simulator's schema copy equals shared/data/proxmox
	@if [ -d "$(PVE_SHARED_SCHEMA)" ]; then \
	  $(BIN)/python tests/pve_simulator/schema/extract.py --check $(PVE_SHARED_SCHEMA); \
	else \
	  echo "test-pve-schema: $(PVE_SHARED_SCHEMA) not present; using the committed copy (tests/pve_simulator/schema/SOURCE.md)"; \
	fi

test-pve-playbooks: setup ## PVE playbook tests against the simulated PVE API (tests/integration/pve)
	$(BIN)/pytest -q -p no:cacheprovider tests/integration/pve

lint-pve: setup ## ansible-lint and ansible-doc of the PVE modules and roles
	$(BIN)/ansible-lint --profile production $(PVE_LINT_PATHS)
	for m in proxmox_pci_mapping proxmox_node_pci_info proxmox_vm; do \
	  $(BIN)/ansible-doc homelab.gpu_passthrough.$$m > /dev/null; done
	for r in proxmox_pci_mapping proxmox_gpu_vm; do \
	  $(BIN)/ansible-doc -t role homelab.gpu_passthrough.$$r > /dev/null; done

TEST_TARGETS += test-pve
