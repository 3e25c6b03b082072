# The GPU guest roles (issue 7): nvidia_driver and whisper_api in Molecule on lab nspawn guests.
# Unit tests of their plugins (tests/unit/test_nvidia_*.py) run in test-unit.
.PHONY: test-guest test-guest-whisper test-guest-driver

GUEST_LOG_DIR ?= $(CURDIR)/.cache/test-guest

test-guest: test-guest-driver test-guest-whisper ## the guest roles in Molecule on nspawn machines (nvidia_driver, whisper_api)

test-guest-whisper test-guest-driver: export NO_COLOR=1
test-guest-whisper test-guest-driver: export ANSIBLE_NOCOLOR=1
test-guest-whisper test-guest-driver: export PY_COLORS=0

# Each scenario keeps its own lab state dir, interface prefix and subnet (see molecule.yml), so
# it can run beside the other lab scenarios. Prints the wall time of each scenario.
test-guest-whisper: setup ## molecule test -s whisper_api (air-gapped tiny.en on an nspawn guest)
	lab/bin/lab deps
	mkdir -p $(GUEST_LOG_DIR)
	@t=$$SECONDS; rc=0; \
	MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_STATE)/whisper_api molecule test -s whisper_api > $(GUEST_LOG_DIR)/whisper_api.log 2>&1 || rc=$$?; \
	grep -E 'exposure of whisper-api|From the controller:|Transcript OK|changed=|WARNING: ' $(GUEST_LOG_DIR)/whisper_api.log | sed -e 's/^ *"msg": //' | cut -c1-220 | sort -u; \
	echo "test-guest-whisper: molecule test -s whisper_api rc=$$rc in $$((SECONDS - t)) s (log: $(GUEST_LOG_DIR)/whisper_api.log)"; \
	if [ $$rc -ne 0 ]; then tail -n 60 $(GUEST_LOG_DIR)/whisper_api.log; exit $$rc; fi

test-guest-driver: setup ## molecule test -s nvidia_driver (the no-GPU stop and the apt source on an nspawn guest)
	lab/bin/lab deps
	mkdir -p $(GUEST_LOG_DIR)
	@t=$$SECONDS; rc=0; \
	MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_STATE)/nvidia_driver molecule test -s nvidia_driver > $(GUEST_LOG_DIR)/nvidia_driver.log 2>&1 || rc=$$?; \
	grep -E 'No NVIDIA GPU found|changed=' $(GUEST_LOG_DIR)/nvidia_driver.log | sed -e 's/^ *"msg": //' | cut -c1-220 | sort -u; \
	echo "test-guest-driver: molecule test -s nvidia_driver rc=$$rc in $$((SECONDS - t)) s (log: $(GUEST_LOG_DIR)/nvidia_driver.log)"; \
	if [ $$rc -ne 0 ]; then tail -n 60 $(GUEST_LOG_DIR)/nvidia_driver.log; exit $$rc; fi

TEST_TARGETS += test-guest
