# Collection-wide lint gate (`make lint`, part of `make test`). Every check covers what exists by
# glob: new modules, roles and playbooks are picked up without editing this file.
#   lint-yaml       yamllint on every YAML file (.yamllint)
#   lint-ansible    ansible-lint, production profile (.ansible-lint), no rule skipped
#   lint-docs       ansible-doc for every module and every role with meta/argument_specs.yml,
#                   antsibull-docs lint-collection-docs (plugin docs included)
#   lint-changelog  antsibull-changelog lint (fragments) and lint-changelog-yaml
#   lint-sanity     ansible-test sanity, Python 3.11, on a copy of the git-tracked files
#   lint-argspecs   every role's meta/argument_specs.yml names exactly its defaults' <role>_* keys, plus
#                   its required options, which have no default (a default would hide a missing value)
.PHONY: lint-yaml lint-ansible lint-docs lint-changelog lint-sanity lint-argspecs

lint-yaml: setup ## yamllint on every YAML file
	$(BIN)/yamllint -s .

lint-ansible: setup ## ansible-lint, production profile
	$(BIN)/ansible-lint

lint-docs: setup ## ansible-doc for every module and role, antsibull-docs lint-collection-docs
	@set -e; n=0; for path in plugins/modules/*.py; do \
	  name=$$(basename $$path .py); \
	  $(BIN)/ansible-doc homelab.gpu_passthrough.$$name >/dev/null; \
	  echo "ansible-doc ok: homelab.gpu_passthrough.$$name"; n=$$((n + 1)); \
	done; \
	for spec in roles/*/meta/argument_specs.yml; do \
	  [ -e "$$spec" ] || continue; \
	  role=$$(basename $$(dirname $$(dirname $$spec))); \
	  $(BIN)/ansible-doc -t role homelab.gpu_passthrough.$$role >/dev/null; \
	  echo "ansible-doc ok: role homelab.gpu_passthrough.$$role"; n=$$((n + 1)); \
	done; \
	echo "ansible-doc rendered $$n modules and roles"
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs .

lint-changelog: setup ## antsibull-changelog lint of the fragments and changelog.yaml
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

lint-sanity: setup ## ansible-test sanity (Python 3.11, no Docker) on a copy of the tracked files
	tests/sanity/run-sanity.sh

lint-argspecs: ## every role's argument_specs options equal its defaults' keys, less the required ones (no default) (STYLE.md 3)
	@set -e; for spec in roles/*/meta/argument_specs.yml; do \
	  role=$$(basename $$(dirname $$(dirname $$spec))); \
	  if ! diff <(grep -E "^$${role}_" roles/$$role/defaults/main.yml | cut -d: -f1 | sort) \
	            <(awk -v p="^      $${role}_" 'function out() { if (name != "" && !req) print name } \
	                $$0 ~ p { out(); name = $$1; sub(/:$$/, "", name); req = 0; next } \
	                /^        required: true/ { req = 1 } END { out() }' $$spec | sort); then \
	    echo "lint-argspecs: roles/$$role: defaults/main.yml (<) and the optional options of meta/argument_specs.yml (>) differ;" \
	         "a required option has no default" >&2; exit 1; fi; \
	  echo "lint-argspecs ok: $$role ($$(grep -c '^        required: true' $$spec || true) required)"; \
	done

LINT_TARGETS += lint-yaml lint-ansible lint-docs lint-changelog lint-sanity lint-argspecs
