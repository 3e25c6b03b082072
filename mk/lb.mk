# The load balancer (issue 18): role whisper_lb in Molecule on three lab nspawn machines (an LB guest,
# two guests with the real whisper service, one bridge between them: LAB_GUEST_LAN=1, 10.217.0.0/16,
# names mlb-*). Verify streams transcriptions through HAProxy while one backend is stopped and started
# again, and prints the counts. Prints its wall time.
.PHONY: test-lb

LB_LOG_DIR ?= $(CURDIR)/.cache/test-lb

test-lb: export NO_COLOR=1
test-lb: export ANSIBLE_NOCOLOR=1
test-lb: export PY_COLORS=0
test-lb: setup ## molecule test -s whisper_lb (HAProxy in front of two real whisper guests, one stopped and started mid-stream)
	lab/bin/lab deps
	mkdir -p $(LB_LOG_DIR)
	@t=$$SECONDS; rc=0; \
	MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_STATE)/whisper_lb molecule test -s whisper_lb > $(LB_LOG_DIR)/whisper_lb.log 2>&1 || rc=$$?; \
	grep -E 'HAProxy [0-9.]+|reloaded, master|refused: |balances |changed=' $(LB_LOG_DIR)/whisper_lb.log | sed -e 's/^ *"\?msg"\?: //' | cut -c1-400 | sort -u; \
	grep -A8 "LB stream: " $(LB_LOG_DIR)/whisper_lb.log | sed -n "/LB stream/,/}'/p" | tr -s ' \n' ' '; echo; \
	echo "test-lb: molecule test -s whisper_lb rc=$$rc in $$((SECONDS - t)) s (log: $(LB_LOG_DIR)/whisper_lb.log)"; \
	if [ $$rc -ne 0 ]; then tail -n 80 $(LB_LOG_DIR)/whisper_lb.log; exit $$rc; fi

TEST_TARGETS += test-lb
