# proxmox_vfio role (issue 4): Molecule scenarios against the lab host VM (lab/bin/lab; its own
# state dir and SSH port, so it never collides with another lab of this checkout), both on one boot
# of the VM (lab/ci/test-vfio.sh), plus the kernel_cmdline unit tests (also part of test-unit).
.PHONY: test-vfio

VFIO_LAB_ENV := LAB_STATE_DIR=$(CURDIR)/.cache/lab-vfio LAB_SSH_PORT=$(or $(VFIO_LAB_SSH_PORT),2232) LAB_NAME=labvfio

test-vfio: setup ## proxmox_vfio on the lab VM: systemd-boot then GRUB scenario, one VM boot
	$(VFIO_LAB_ENV) lab/ci/test-vfio.sh

TEST_TARGETS += test-vfio
