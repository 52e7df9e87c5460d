# Two commands on a fresh machine:  make demo   and   make test
# Everything Python goes into a repo-local .venv; the Kafka broker is assembled from Maven
# Central by `crowdsound broker up` into .crowdsound/ (both git-ignored).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: bootstrap deploy-tools demo demo-secure test broker-up broker-down clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "crowdsound needs Python 3.11+, found " + sys.version.split()[0])'
	@command -v java >/dev/null || { echo "Java 17+ is needed for the Kafka broker: apt-get install openjdk-17-jre-headless"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to assemble the Kafka broker: apt-get install maven"; exit 1; }
	@ldconfig -p | grep -q 'libfluidsynth\.so\.3' && [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfluidsynth3 fluid-soundfont-gm; \
	  else echo "The composer needs FluidSynth and a General MIDI SoundFont: sudo apt-get install libfluidsynth3 fluid-soundfont-gm"; exit 1; fi; }
	@# The control room's browser test drives Debian's chromium (never a downloaded browser).
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "note: the control room's browser test needs chromium (sudo apt-get install chromium); it is skipped without it"; fi; }
	@# crowdsound analyze reads AAC/M4A and video files through ffmpeg.
	@command -v ffmpeg >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg; \
	  else echo "note: crowdsound analyze reads AAC/M4A through ffmpeg (sudo apt-get install ffmpeg)"; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

bootstrap: $(STAMP)

demo: bootstrap
	$(BIN)/crowdsound demo

# The same on the secure broker (SASL_SSL, ACLs, a principal per role): see README "Security".
demo-secure: bootstrap
	$(BIN)/crowdsound demo --secure

# The test session starts its own broker on port 19092 (fresh data) and stops it at the end,
# and a secure one on 19094-19096 for the security tests; set KAFKA_BOOTSTRAP_SERVERS to run
# the tests against another cluster instead (the security tests are then skipped).
# The chart's checks (tests/test_deploy.py) need helm (built from the Go module proxy into
# .crowdsound/bin) and promtool (Debian's prometheus package): installed here too, so that
# `make test` on a fresh machine runs what CI runs instead of skipping them.
deploy-tools:
	@command -v go >/dev/null && infra/tools/install_helm.sh || echo "note: the deployment tests need Go to build helm (apt-get install golang); they are skipped without it"
	@command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else echo "note: the deployment tests need promtool (sudo apt-get install prometheus); they are skipped without it"; fi; }

test: bootstrap deploy-tools
	$(BIN)/pytest

broker-up: bootstrap
	$(BIN)/crowdsound broker up

broker-down: bootstrap
	$(BIN)/crowdsound broker down

clean:
	-$(BIN)/crowdsound broker down
	rm -rf $(VENV) .crowdsound out
