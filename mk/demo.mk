# The main job on the built-in local lab (issue 8): `make demo`, `make demo-down`.
#   test-demo  runs tests/readme/test_readme_persona.py first (the new user's path on the lab and the
#              simulated API: bootstrap, a copied inventory, one site.yml run to a transcript, a second
#              run with no change, undo.yml with the reboot back to the original host), then
#              tests/readme/test_readme_demo.py on the host the undo put back: `make demo` itself, the
#              README's client examples against the deployed API, then
#              `make demo-down` (nothing may be left). Part of `make test`.
.PHONY: demo demo-down test-demo

demo: setup ## bring the local lab up and run playbooks/site.yml against it, print a transcript
	demo/run.sh

demo-down: ## remove everything make demo started (lab, simulated PVE API) and prove nothing is left
	demo/pve_sim.sh stop $${LAB_STATE_DIR:-lab/.state}/demo
	lab/bin/lab down
	lab/bin/lab leftovers

test-demo: setup service-venv ## the new user's path (bootstrap .. undo) on the lab, then make demo, the README's clients, make demo-down
	$(BIN)/pytest -q -s -p no:cacheprovider -rA tests/readme/test_readme_persona.py tests/readme/test_readme_demo.py

TEST_TARGETS += test-demo
