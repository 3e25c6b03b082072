# Modules of homelab.gpu_passthrough: playbook runs against fixture sysfs trees (shared/fixtures/iommu
# and every listing of shared/fixtures/iommu-corpus, built by tests/unit/sysfs_tree.py) and the real /sys,
# kernel_cmdline on a temporary /etc tree of the real Proxmox VE boot files (tests/integration/kernel_cmdline),
# and the build -> install into a fresh venv -> ansible-doc round trip.
MODULES_OUT := tests/output/modules

.PHONY: test-modules test-modules-playbooks test-modules-build
test-modules: test-modules-playbooks test-modules-build ## the modules in playbooks against fixture sysfs trees and /sys, build + install + ansible-doc

test-modules-playbooks: setup ## the modules' integration playbooks (tests/integration/modules, kernel_cmdline)
	rm -rf $(MODULES_OUT)/sysfs
	$(BIN)/python tests/unit/sysfs_tree.py $(MODULES_OUT)/sysfs
	@set -e; for playbook in tests/integration/modules/*.yml; do \
	  echo "=== $$playbook"; \
	  ANSIBLE_CALLBACK_RESULT_FORMAT=yaml $(BIN)/ansible-playbook -i localhost, $$playbook \
	    -e fixture_dir=$(CURDIR)/$(MODULES_OUT)/sysfs; \
	done
	@set -e; for playbook in tests/integration/kernel_cmdline/*.yml; do \
	  echo "=== $$playbook"; \
	  ANSIBLE_CALLBACK_RESULT_FORMAT=yaml $(BIN)/ansible-playbook -i localhost, $$playbook; \
	done

test-modules-build: setup ## ansible-galaxy build, install into a fresh venv, ansible-doc there
	tests/integration/modules/build_install_doc.sh $(CURDIR)/$(MODULES_OUT)/build

TEST_TARGETS += test-modules
