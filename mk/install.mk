# Installing the collection the way a user does, apart from the development toolchain (issue 17):
#   setup-controller  .venv with requirements/controller.txt only (ansible-core, proxmoxer, requests):
#                     what the controller needs to run playbooks/site.yml against a real node
#   build             the collection tarball (ansible-galaxy collection build; galaxy.yml build_ignore
#                     says what stays out) in dist/, for `ansible-galaxy collection install`
# tests/readme/test_install.py (run by test-readme) plays both on a copy of the checkout: a fresh
# controller venv, the built tarball and a git URL installed into an empty collections path, used
# from another folder.
CONTROLLER_STAMP := $(VENV)/.stamp-controller
DIST := dist

.PHONY: setup-controller build

$(CONTROLLER_STAMP): requirements/controller.txt requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -r requirements/controller.txt
	touch $@

setup-controller: $(CONTROLLER_STAMP) $(COLL_LINK) ## for users: .venv with the controller's needs only (requirements/controller.txt), no dev tools

build: setup-controller ## build the collection tarball in dist/ (what ansible-galaxy collection install takes)
	$(BIN)/ansible-galaxy collection build --force --output-path $(DIST)
