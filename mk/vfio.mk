# proxmox_vfio role (issue 4): Molecule scenarios against the lab host VM (lab/bin/lab; its own
# state dir and SSH port, so it never collides with another lab of this checkout), plus the
# kernel_cmdline unit tests (also part of test-unit).
.PHONY: test-vfio test-vfio-unit lint-vfio

VFIO_LAB_ENV := LAB_STATE_DIR=$(CURDIR)/.cache/lab-vfio LAB_SSH_PORT=$(or $(VFIO_LAB_SSH_PORT),2232) LAB_NAME=labvfio
VFIO_SCENARIOS := proxmox_vfio proxmox_vfio_systemd_boot

test-vfio-unit: setup
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_kernel_cmdline.py

# argument_specs keys == defaults keys (STYLE.md 3), and ansible-lint (production) on the role,
# the module and the scenarios.
lint-vfio: setup
	diff <(grep -E '^proxmox_vfio_' roles/proxmox_vfio/defaults/main.yml | cut -d: -f1 | sort) \
	     <(grep -E '^      proxmox_vfio_' roles/proxmox_vfio/meta/argument_specs.yml | tr -d ' ' | cut -d: -f1 | sort)
	$(BIN)/ansible-doc -t role homelab.gpu_passthrough.proxmox_vfio >/dev/null
	$(BIN)/ansible-doc homelab.gpu_passthrough.kernel_cmdline >/dev/null
	$(BIN)/ansible-lint roles/proxmox_vfio plugins/modules/kernel_cmdline.py molecule/proxmox_vfio molecule/proxmox_vfio_systemd_boot

test-vfio: setup
	lab/bin/lab deps
	@for s in $(VFIO_SCENARIOS); do \
	  start=$$(date +%s); \
	  echo "== molecule test -s $$s"; \
	  $(VFIO_LAB_ENV) $(BIN)/molecule test -s $$s || exit 1; \
	  echo "== molecule scenario $$s: $$(( $$(date +%s) - start )) s wall time"; \
	done

TEST_TARGETS += test-vfio
LINT_TARGETS += lint-vfio
