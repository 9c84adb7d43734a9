# The two README commands: `make demo` and `make test`. Both create (or reuse) the virtual environment.
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

.PHONY: demo test install system-deps clean-venv

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

# Video decoding (tribert prepare, its tests) needs the system FFmpeg; install it when we can (root + apt-get).
system-deps:
	@if ! command -v ffmpeg >/dev/null 2>&1; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "Installing FFmpeg with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
		else \
			echo "FFmpeg is missing: install it (e.g. 'sudo apt-get install ffmpeg'); the video tests are skipped without it."; \
		fi; \
	fi

test: install system-deps
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
