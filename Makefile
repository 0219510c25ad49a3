# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv if missing, then trains the course CVAE and writes outputs/
#   make test   creates .venv if missing, then runs every test (units, notebooks, browser)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lab student-copies clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first, as a matching pair, so no resolver picks another build.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m cvae_lib train --out outputs

test: $(STAMP)
	$(PY) -m pytest

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf outputs .pytest_cache
