# The main job on the built-in local lab (issue 8): `make demo`, `make demo-down`.
.PHONY: demo demo-down

demo: setup
	demo/run.sh

demo-down:
	demo/pve_sim.sh stop $${LAB_STATE_DIR:-lab/.state}/demo
	lab/bin/lab down
	lab/bin/lab leftovers
