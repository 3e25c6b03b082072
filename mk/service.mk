# The transcription service (service/): its own venv, the real tiny.en model, real audio.
SERVICE_DIR := service
SERVICE_VENV := $(SERVICE_DIR)/.venv
SERVICE_STAMP := $(SERVICE_VENV)/.stamp
SERVICE_PY := $(CURDIR)/$(SERVICE_VENV)/bin/python
SERVICE_APT := espeak-ng sox curl openssl

.PHONY: test-service bench-service bench-apt service-venv service-apt

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

# The benchmark against the peers (service/bench/): not part of make test, it prints figures. It installs
# each peer into a venv of its own under BENCH_PEERS_DIR (default ../.bench-peers, outside the checkout)
# from the source archives in BENCH_PEERS_SRC (default ../shared/peers), reused by the next run; writes the
# table into README.md and service/README.md and, with BENCH_OUT=path, the JSON rows. BENCH_ARGS: more
# options of bench/bench.py (--help); BENCH_SERVICE_ENV: WHISPER_API_* settings for every configuration
# of this service. tests/readme runs a short form (this service and faster-whisper only).
# whisper-asr-webservice decodes every upload with the ffmpeg command (its Docker image installs it).
bench-apt: service-apt ## the Debian tools of make bench-service: the service's, and ffmpeg (whisper-asr-webservice runs it)
	@command -v ffmpeg >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then echo "bench: installing ffmpeg"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else echo "bench: ffmpeg is missing (whisper-asr-webservice runs it): run 'sudo apt-get install -y ffmpeg'" >&2; exit 1; fi; }

bench-service: setup bench-apt service-venv ## the side-by-side benchmark against speaches, whisper-asr-webservice, wyoming-faster-whisper (BENCH_ARGS, BENCH_OUT)
	cd $(SERVICE_DIR) && HF_HUB_OFFLINE=1 $(foreach v,BENCH_OUT BENCH_PEERS_DIR BENCH_PEERS_SRC,$(if $($(v)),$(v)=$(abspath $($(v))))) \
	  $(SERVICE_PY) bench/bench.py $(BENCH_ARGS)

TEST_TARGETS += test-service
