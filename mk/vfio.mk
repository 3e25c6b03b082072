# proxmox_vfio role (issue 4): two Molecule scenarios.
#   test-vfio         the GRUB path on the lab host VM (lab/ci/test-vfio.sh; its own state dir and SSH
#                     port, so it never collides with another lab of this checkout): one VM boot
#   test-vfio-sdboot  the systemd-boot (proxmox-boot-tool) path on an nspawn machine: no VM boot
# The kernel_cmdline unit tests run in test-unit.
.PHONY: test-vfio test-vfio-sdboot

VFIO_LAB_ENV := LAB_STATE_DIR=$(CURDIR)/.cache/lab-vfio LAB_SSH_PORT=$(or $(VFIO_LAB_SSH_PORT),2232) LAB_NAME=labvfio
VFIO_LOG_DIR ?= $(CURDIR)/.cache/test-vfio

test-vfio: setup ## proxmox_vfio's GRUB path on the lab VM (check, converge + real reboot, idempotence, verify), one VM boot
	$(VFIO_LAB_ENV) lab/ci/test-vfio.sh

test-vfio-sdboot: export NO_COLOR=1
test-vfio-sdboot: export ANSIBLE_NOCOLOR=1
test-vfio-sdboot: export PY_COLORS=0
test-vfio-sdboot: setup ## proxmox_vfio's systemd-boot path (proxmox-boot-tool stand-in) on an nspawn machine, no VM boot
	lab/bin/lab deps
	mkdir -p $(VFIO_LOG_DIR)
	@t=$$SECONDS; rc=0; \
	MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_STATE)/proxmox_vfio_systemd_boot molecule test -s proxmox_vfio_systemd_boot > $(VFIO_LOG_DIR)/systemd_boot.log 2>&1 || rc=$$?; \
	grep -E 'changed=|msg: All assertions passed|unchanged: ' $(VFIO_LOG_DIR)/systemd_boot.log | sort | uniq -c | cut -c1-220; \
	echo "test-vfio-sdboot: molecule test -s proxmox_vfio_systemd_boot rc=$$rc in $$((SECONDS - t)) s (log: $(VFIO_LOG_DIR)/systemd_boot.log)"; \
	if [ $$rc -ne 0 ]; then tail -n 80 $(VFIO_LOG_DIR)/systemd_boot.log; exit $$rc; fi

TEST_TARGETS += test-vfio test-vfio-sdboot
