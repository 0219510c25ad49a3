# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv if missing, then trains the course CVAE and writes outputs/
#   make test   creates .venv if missing, then runs every test (units, notebooks, browser)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Three installs, each on top of the one before: what a student needs for the lessons (`make lab`,
# `make demo`), the instructor's classroom tools (hub, book, presenter, slides, grader), and the
# test tools (`make test`, which tests the classroom tools too).
LESSONS := $(VENV)/.installed-lessons
CLASSROOM := $(VENV)/.installed-classroom
STAMP := $(VENV)/.installed
# JupyterLab settings that switch off its news and update pop-up (it covers widgets).
OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
CHROMIUM := /usr/bin/chromium

.PHONY: demo test lab slides prepare present system-tools student-copies clean

$(LESSONS): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first, as a matching pair, so no resolver picks another build.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e .
	touch $@

$(CLASSROOM): $(LESSONS)
	$(PY) -m pip install --quiet -e '.[classroom]'
	touch $@

$(STAMP): $(CLASSROOM)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(OVERRIDES): $(LESSONS)
	mkdir -p $(dir $@)
	echo '{"@jupyterlab/apputils-extension:notification":{"checkForUpdates":false,"fetchNews":"false"}}' > $@

# The browser tests drive the system's Chromium and the grader sandboxes student notebooks in
# bubblewrap: install whichever is missing where apt-get can (Debian, CI). Elsewhere the browser
# tests skip and say why, and `grade` runs with its time and memory limits only, and says so.
system-tools:
	@missing=""; [ -x $(CHROMIUM) ] || missing="chromium"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	command -v cgexec >/dev/null 2>&1 || missing="$$missing cgroup-tools"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing $$missing with apt-get (about 30 s)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing) \
	    || echo "Could not install $$missing: the tests that need it will be skipped."; \
	fi

demo: $(LESSONS)
	$(PY) -m cvae_lib train --out outputs

test: $(STAMP) $(OVERRIDES) system-tools
	$(PY) -m pytest

lab: $(LESSONS) $(OVERRIDES)
	$(VENV)/bin/jupyter lab notebooks/

# The lessons as live slides (jupyterlab-slideshow): open a notebook, click the deck button.
slides: $(CLASSROOM) $(OVERRIDES)
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 notebooks/

# Build every dataset and model cache the course needs, so a classroom runs offline.
prepare: $(LESSONS)
	$(PY) -m cvae_lib prepare

# The presenter view: widgets only, no code, served by voila on this machine (127.0.0.1) with a
# fresh token in the printed URL, at most 4 page views at once (presenter/voila.py).
present: $(CLASSROOM)
	$(VENV)/bin/voila --Voila.config_file_paths=presenter presenter/cvae_presenter.ipynb

# Regenerate the student copies of the exercises (05-07) from notebooks/solutions/.
# GRADED=1 leaves the folded solutions out of the student copies (a graded class).
student-copies: $(CLASSROOM)
	$(PY) -m cvae_lib exercises $(if $(GRADED),--graded --force)

clean:
	rm -rf outputs .pytest_cache

# The course as a book (Jupyter Book 1.x, built offline): book/_build/html/index.html, every
# lesson executed with the prepared models (so it runs `prepare` first: nothing to do once the
# models are cached). BOOK_FLAGS=--solutions builds the instructor's copy with the exercises'
# solutions into book/_build/instructor/. `book-fast` executes the tests' tiny models instead,
# into book/_build/fast/ (what .ci/run builds and tests). A rebuild re-runs changed notebooks.
# HUB_URL=https://hub.example.edu gives every lesson page a button that opens it on that class
# hub (with CVAE_HUB_RELEASE set as on the hub, if it is not /srv/cvae-course), and shows the
# exercises as the hub hands them out: graded, without their folded solutions.
.PHONY: book book-fast
BOOK_HUB := $(if $(HUB_URL),--hub-url $(HUB_URL))
book: prepare $(CLASSROOM)
	$(PY) -m cvae_lib.classroom.book $(BOOK_HUB) $(BOOK_FLAGS)

book-fast: $(CLASSROOM)
	$(PY) -m cvae_lib.classroom.book --fast $(BOOK_HUB) $(BOOK_FLAGS)

# A class on this machine: JupyterHub on http://127.0.0.1:8000 for the students named in
# CVAE_HUB_STUDENTS (e.g. `sudo make hub CVAE_HUB_STUDENTS="alice bob"`). It builds the release
# students run (outside this private checkout), issues the first passwords (printed once, kept
# in hub/state), checks as an unprivileged user that nothing private is readable, then serves.
# Each student: a system user, a cgroup capping memory, CPU and processes, and their own copy of
# the lessons, pulled by nbgitpuller from the release's git repository at every login.
# `make hub-publish` hands out lessons changed since: students get them at their next login or
# launch button, their own edits kept. The proxy is pinned in hub/package-lock.json. See
# hub/jupyterhub_config.py and the book.
.PHONY: hub hub-publish
HUB_PROXY := hub/node_modules/.bin/configurable-http-proxy
$(HUB_PROXY): hub/package.json hub/package-lock.json
	npm ci --prefix hub --no-audit --no-fund --silent
	touch $@

hub: $(CLASSROOM) $(OVERRIDES) $(HUB_PROXY) system-tools
	$(PY) -m cvae_lib.classroom.hub release
	$(PY) -m cvae_lib.classroom.hub accounts
	$(PY) -m cvae_lib.classroom.hub check
	$(VENV)/bin/jupyterhub -f hub/jupyterhub_config.py

hub-publish: $(CLASSROOM)
	$(PY) -m cvae_lib.classroom.hub publish

# The hub in a real browser (tests/test_hub.py, root only): .ci/run's last stage.
.PHONY: test-hub
test-hub: $(STAMP) $(OVERRIDES) system-tools $(HUB_PROXY)
	$(PY) -m pytest -m hub -n 0 -s -rs -p no:cacheprovider tests/test_hub.py
