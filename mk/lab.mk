# The local test lab (issue 3; docs/lab.md): the lab_smoke Molecule scenario against a QEMU TCG
# VM with an emulated IOMMU and a systemd-nspawn guest, then a check that nothing is left behind.
.PHONY: test-lab lab-up lab-down lab-status

test-lab: setup
	$(BIN)/pytest -q -p no:cacheprovider tests/lab
	lab/ci/test-lab.sh

lab-up:
	lab/bin/lab deps
	lab/bin/lab up all

lab-down:
	lab/bin/lab down
	lab/bin/lab leftovers

lab-status:
	lab/bin/lab status

TEST_TARGETS += test-lab
