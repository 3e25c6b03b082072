# The transcription service (service/): its own venv, the real tiny.en model, real audio.
SERVICE_DIR := service
SERVICE_VENV := $(SERVICE_DIR)/.venv
SERVICE_STAMP := $(SERVICE_VENV)/.stamp
SERVICE_PY := $(CURDIR)/$(SERVICE_VENV)/bin/python
SERVICE_APT := espeak-ng sox curl openssl

.PHONY: test-service bench-service service-venv service-apt

service-apt: ## install the Debian tools the service tests need (espeak-ng, sox, curl, openssl)
	@missing=""; for t in espeak-ng sox curl openssl; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "service: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SERVICE_APT) >/dev/null; \
	  else echo "service: missing$$missing: run 'sudo apt-get install -y $(SERVICE_APT)'" >&2; exit 1; fi; \
	fi

$(SERVICE_STAMP): $(SERVICE_DIR)/pyproject.toml $(SERVICE_DIR)/requirements.lock $(SERVICE_DIR)/requirements-test.lock
	test -x $(SERVICE_PY) || $(PYTHON) -m venv $(SERVICE_VENV)
	$(SERVICE_PY) -m pip install -q --disable-pip-version-check -c $(SERVICE_DIR)/requirements-test.lock -e '$(SERVICE_DIR)[test]'
	touch $@

service-venv: $(SERVICE_STAMP) ## create service/.venv with the transcription service and its test tools

test-service: setup service-apt service-venv ## the transcription service's tests with the real tiny.en model and real audio
	cd $(SERVICE_DIR) && HF_HUB_OFFLINE=1 $(SERVICE_PY) -m pytest -q -p no:cacheprovider tests

# BENCH_ARGS: extra options of bench/bench.py (tests/readme runs a short form: --seconds 15 --runs 1 --skip-fws).
bench-service: setup service-apt service-venv ## the service benchmark (BENCH_ARGS for its options)
	cd $(SERVICE_DIR) && HF_HUB_OFFLINE=1 $(SERVICE_PY) bench/bench.py $(BENCH_ARGS)

TEST_TARGETS += test-service
