# The local test lab (issue 3; docs/lab.md): the lab CLI's tests, the image builds (timed), an nspawn
# guest up and down, then a check that nothing is left behind. The lab VM itself boots in test-vfio
# and test-demo only.
.PHONY: test-lab lab-up lab-down lab-status

test-lab: setup ## the lab itself: CLI tests, image builds (timed), an nspawn guest up/down, no leftovers
	$(BIN)/pytest -q -p no:cacheprovider tests/lab
	lab/ci/test-lab.sh

lab-up: ## start the whole lab (host VM and nspawn guests) for manual work
	lab/bin/lab deps
	lab/bin/lab up all

lab-down: ## stop the lab and prove nothing is left
	lab/bin/lab down
	lab/bin/lab leftovers

lab-status: ## what of the lab runs and how to reach it
	lab/bin/lab status

TEST_TARGETS += test-lab
