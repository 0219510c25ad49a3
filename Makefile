# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv if missing, then trains the course CVAE and writes outputs/
#   make test   creates .venv if missing, then runs every test (units, notebooks, browser)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# JupyterLab settings that switch off its news and update pop-up (it covers widgets).
OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
CHROMIUM := /usr/bin/chromium

.PHONY: demo test lab slides prepare present chromium student-copies clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first, as a matching pair, so no resolver picks another build.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(OVERRIDES): $(STAMP)
	mkdir -p $(dir $@)
	echo '{"@jupyterlab/apputils-extension:notification":{"checkForUpdates":false,"fetchNews":"false"}}' > $@

# The browser tests drive the system's Chromium; install it where apt-get can (Debian, CI).
# Elsewhere the browser tests skip and say why.
chromium:
	@if [ ! -x $(CHROMIUM) ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Chromium for the browser tests (apt-get, about 30 s)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium) \
	    || echo "Could not install Chromium: the browser tests will be skipped."; \
	fi

demo: $(STAMP)
	$(PY) -m cvae_lib train --out outputs

test: $(STAMP) $(OVERRIDES) chromium
	$(PY) -m pytest

lab: $(STAMP) $(OVERRIDES)
	$(VENV)/bin/jupyter lab notebooks/

# The lessons as live slides (jupyterlab-slideshow): open a notebook, click the deck button.
slides: $(STAMP) $(OVERRIDES)
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 notebooks/

# Build every dataset and model cache the course needs, so a classroom runs offline.
prepare: $(STAMP)
	$(PY) -m cvae_lib prepare

# The presenter view: widgets only, no code, served by voila on this machine (127.0.0.1) with a
# fresh token in the printed URL, at most 4 page views at once (presenter/voila.py).
present: $(STAMP)
	$(VENV)/bin/voila --Voila.config_file_paths=presenter presenter/cvae_presenter.ipynb

clean:
	rm -rf outputs .pytest_cache
