# The two README commands: `make demo` and `make test` (the fast test tier; `make test-all`: both tiers, as CI).
# All create (or reuse) the virtual environment.
#   VENV   where the environment lives (default: .venv in this checkout)
#   PYTHON the interpreter that creates it (default: python3.11, else python3)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The stamp's name carries a hash of setup.py: changing the dependencies reinstalls them, nothing else does.
DEPS_HASH := $(shell cat setup.py | sha256sum | cut -c1-16)
STAMP := $(VENV)/.tribert-deps-$(DEPS_HASH)
PYTEST_ARGS ?=

.PHONY: demo test test-all install system-deps clean-venv

$(STAMP): setup.py
	@if ! $(PY) -c "import sys; assert sys.version_info >= (3, 10)" 2>/dev/null; then \
		echo "Creating the virtual environment in $(VENV) with $(PYTHON)"; \
		rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	@echo "Installing tribert_hf and its dependencies (torch 2.11 triple: a few minutes on a fresh machine)"
	$(PY) -m pip install --progress-bar off -e ".[all]"
	rm -f $(VENV)/.tribert-deps-* && touch $@

# Always (re)link this checkout into the environment: cheap, and right when VENV is shared between clones.
install: $(STAMP)
	@$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .

demo: install
	$(PY) examples/run_demo.py

# System programs: FFmpeg (video decoding: tribert prepare and its tests), FluidSynth and the two General MIDI
# soundfonts that `tribert render-solos` uses (timgm6mb, musescore-general). Installed when we can (root +
# apt-get), without recommended packages (they would bring a third soundfont, which we keep unseen); the tests that
# need a missing program are skipped and say so.
SYSTEM_PACKAGES := ffmpeg fluidsynth timgm6mb-soundfont musescore-general-soundfont
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v fluidsynth >/dev/null 2>&1 || missing="$$missing fluidsynth"; \
	[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || missing="$$missing timgm6mb-soundfont"; \
	[ -f /usr/share/sounds/sf3/MuseScore_General.sf3 ] || missing="$$missing musescore-general-soundfont"; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "Installing with apt-get:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "Missing system packages:$$missing (e.g. 'sudo apt-get install --no-install-recommends$$missing'); the tests that need them are skipped."; \
		fi; \
	fi

# Two tiers: `make test` runs the fast one (unit tests, a few minutes on 2 cores); `make test-all` adds the slow one
# (tests marked `slow`: end to end, trainings in subprocesses, the demo, benchmark runs), as `.ci/run` does.
test: install system-deps
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-all: install system-deps
	RUN_SLOW=1 $(PY) -m pytest tests $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
