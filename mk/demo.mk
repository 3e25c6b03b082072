# The main job on the built-in local lab (issue 8): `make demo`, `make demo-down`.
#   test-demo  runs tests/readme/test_readme_demo.py: `make demo` itself, a second site.yml run that
#              must change nothing, the README's client examples against the deployed API, then
#              `make demo-down` (nothing may be left). Part of `make test`.
.PHONY: demo demo-down test-demo

demo: setup ## bring the local lab up and run playbooks/site.yml against it, print a transcript
	demo/run.sh

demo-down: ## remove everything make demo started (lab, simulated PVE API) and prove nothing is left
	demo/pve_sim.sh stop $${LAB_STATE_DIR:-lab/.state}/demo
	lab/bin/lab down
	lab/bin/lab leftovers

test-demo: setup service-venv ## make demo, a second site.yml run (0 changed), the README's client examples, make demo-down
	$(BIN)/pytest -q -s -p no:cacheprovider -rA tests/readme/test_readme_demo.py

TEST_TARGETS += test-demo
