# proxmox_vfio role (issue 4): Molecule scenarios against the lab host VM (lab/bin/lab; its own
# state dir and SSH port, so it never collides with another lab of this checkout), both on one boot
# of the VM (lab/ci/test-vfio.sh), plus the kernel_cmdline unit tests (also part of test-unit).
.PHONY: test-vfio lint-vfio

VFIO_LAB_ENV := LAB_STATE_DIR=$(CURDIR)/.cache/lab-vfio LAB_SSH_PORT=$(or $(VFIO_LAB_SSH_PORT),2232) LAB_NAME=labvfio

# argument_specs keys == defaults keys (STYLE.md 3), and ansible-lint (production) on the role,
# the module and the scenarios.
lint-vfio: setup ## proxmox_vfio: argument_specs keys = defaults keys, ansible-doc, ansible-lint
	diff <(grep -E '^proxmox_vfio_' roles/proxmox_vfio/defaults/main.yml | cut -d: -f1 | sort) \
	     <(grep -E '^      proxmox_vfio_' roles/proxmox_vfio/meta/argument_specs.yml | tr -d ' ' | cut -d: -f1 | sort)
	$(BIN)/ansible-doc -t role homelab.gpu_passthrough.proxmox_vfio >/dev/null
	$(BIN)/ansible-doc homelab.gpu_passthrough.kernel_cmdline >/dev/null
	$(BIN)/ansible-lint roles/proxmox_vfio plugins/modules/kernel_cmdline.py molecule/proxmox_vfio molecule/proxmox_vfio_systemd_boot

test-vfio: setup ## proxmox_vfio on the lab VM: systemd-boot then GRUB scenario, one VM boot
	$(VFIO_LAB_ENV) lab/ci/test-vfio.sh

TEST_TARGETS += test-vfio
LINT_TARGETS += lint-vfio
