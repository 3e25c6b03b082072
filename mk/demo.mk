# The main job on the built-in local lab (issue 8): `make demo`, `make demo-down`.
#   test-demo  runs tests/readme/test_readme_demo.py: `make demo` itself, a second site.yml run that
#              must change nothing, the README's client examples against the deployed API, then
#              `make demo-down` (nothing may be left). Part of `make test`.
.PHONY: demo demo-down test-demo

demo: setup
	demo/run.sh

demo-down:
	demo/pve_sim.sh stop $${LAB_STATE_DIR:-lab/.state}/demo
	lab/bin/lab down
	lab/bin/lab leftovers

test-demo: setup service-venv
	$(BIN)/pytest -q -s -p no:cacheprovider -rA tests/readme/test_readme_demo.py

TEST_TARGETS += test-demo
