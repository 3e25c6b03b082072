# Every command in the README is run by a test or by .ci/run (issue 8). tests/readme/:
#   test-readme  the accounting (each README command -> the test that runs it) and the commands that
#                need no lab: make setup + activate, the homelab inventory's commands (loaded, not
#                sent to 192.168.20.x), ansible-doc, ansible-vault create, make bench-service (short),
#                the model fetch against a local stand-in of the hub (test_readme_fetch_model.py)
#   the commands that need the deployed API run in test-demo (mk/demo.mk), after make demo.
.PHONY: test-readme

test-readme: setup service-venv ## every README command accounted for; the ones that need no lab run here
	$(BIN)/pytest -q -p no:cacheprovider -rA tests/readme/test_readme_static.py tests/readme/test_readme_privileges.py tests/readme/test_vm_template.py tests/readme/test_install.py tests/readme/test_readme_fetch_model.py

TEST_TARGETS += test-readme
