# LLM from Scratch. The two commands a new user needs: `make book` and `make test`.
# Every target creates the virtual environment and fetches the offline assets when needed.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBDIR  := _build/nbtest
PYTEST_FLAGS ?=
# OpenMP threads that wait passively instead of spinning: ~5 % slower on an idle machine, up to
# 10x faster when anything else shares the cores (measured in bench/bench_train.py).
export OMP_WAIT_POLICY ?= PASSIVE

SITE_VENV   := .venv-site
SITE_STAMP  := $(SITE_VENV)/.installed
LAB_STAMP   := $(VENV)/.lab-installed
STUDENT_DIR := _build/student
JB_BUILD    := $(VENV)/bin/jupyter-book build --warningiserror --keep-going

.PHONY: help venv fetch export check-export check-prose notebooks test book book-student check-site \
	check-site-student lab pretrain clean lint-workflows readme check-readme wheel-test site

help:
	@echo "make book      build the course site into _build/html (executes every lesson)"
	@echo "make book-student  the student edition, without solutions, into $(STUDENT_DIR)/_build/html"
	@echo "make check-site    open the built site in headless Chromium and check every page"
	@echo "make test      export check, prose check, every lesson and lab under nbval, and tests/"
	@echo "make lab       open the lessons as notebooks in JupyterLab"
	@echo "make fetch     fetch and verify the offline assets into data/"
	@echo "make wheel-test    the package's wheel in a fresh environment outside the clone runs chapters 2 and 3"
	@echo "make site      the site as it is published: student/ edition and the wheel (dist/) inside _build/html"
	@echo "make readme    rewrite the README's badges and links from _config.yml's addresses"
	@echo "make export    regenerate llmscratch/ from the lessons' export cells"
	@echo "make pretrain  full-profile chapter 4 run that produces checkpoints/"
	@echo "make pretrain NPROC=N  the same run, data-parallel on N processes (torchrun)"

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

fetch: $(STAMP)
	$(PY) tools/fetch.py

export: $(STAMP)
	$(PY) tools/export.py

check-export: $(STAMP)
	$(PY) tools/export.py --check

# Hand-typed figures, development words and code lines over 80 characters in lessons and labs.
check-prose: $(STAMP)
	$(PY) tools/check_prose.py

notebooks: $(STAMP)
	rm -rf $(NBDIR)
	$(PY) tools/to_ipynb.py $(NBDIR) $(wildcard lessons/[0-9]*.md) $(wildcard labs/lab*.md)

# The GitHub workflows (.github/workflows/), checked by actionlint (pinned in requirements-test.txt).
lint-workflows: $(STAMP)
	$(VENV)/bin/actionlint .github/workflows/ci.yml .github/workflows/pages.yml

# The README's badges and links come from the addresses in _config.yml.
readme: $(STAMP)
	$(PY) tools/publish.py readme

check-readme: $(STAMP)
	$(PY) tools/publish.py readme --check

test: fetch check-export check-prose check-readme lint-workflows notebooks
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
		$(NBDIR) tests $(PYTEST_FLAGS)

# The package on its own: its wheel, installed by a chapter notebook's set-up cell into a fresh
# environment outside the clone, runs chapters 2 and 3 from a temporary folder under nbval.
wheel-test: $(STAMP)
	PY=$(PY) PYTHON=$(PYTHON) tools/wheel_test.sh

book: fetch check-export
	$(JB_BUILD) .
	@echo "site: _build/html/index.html"

# The same book with COURSE_EDITION=student: book/_ext/course_site.py removes every solution
# from the pages and the notebooks. It reuses the lessons' execution cache of `make book`.
book-student: fetch check-export
	COURSE_EDITION=student $(JB_BUILD) --path-output $(STUDENT_DIR) .
	@echo "student site: $(STUDENT_DIR)/_build/html/index.html"

# The site as .github/workflows/pages.yml publishes it (after both editions are built and checked).
site: $(STAMP)
	$(PY) tools/publish.py assemble

# The browser check has its own small environment (Playwright); it drives Debian's Chromium.
$(SITE_STAMP): requirements-site.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(SITE_VENV)
	$(SITE_VENV)/bin/python -m pip install --quiet -r requirements-site.txt
	touch $@

check-site: $(SITE_STAMP)
	$(SITE_VENV)/bin/python tools/check_site.py _build/html --screenshots _build/screenshots

check-site-student: $(SITE_STAMP)
	$(SITE_VENV)/bin/python tools/check_site.py $(STUDENT_DIR)/_build/html --student \
		--screenshots $(STUDENT_DIR)/screenshots

# JupyterLab, set to open MyST .md files as notebooks (Jupytext) when double-clicked.
$(LAB_STAMP): $(STAMP) requirements-lab.txt tools/jupyterlab-overrides.json
	$(PY) -m pip install --quiet -r requirements-lab.txt
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp tools/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)  # containers often run as root

lab: fetch $(LAB_STAMP)
	$(VENV)/bin/jupyter lab $(LAB_FLAGS) --ServerApp.contents_manager_class=jupytext.TextFileContentsManager lessons

# NPROC=N: data-parallel on N local processes (torchrun; nccl on CUDA GPUs, gloo on the CPU).
NPROC ?=
pretrain: fetch check-export
ifeq ($(strip $(NPROC)),)
	LLMS_PROFILE=full $(PY) tools/pretrain.py
else
	LLMS_PROFILE=full $(PY) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC) \
		tools/pretrain.py || { echo "data-parallel pretraining stopped (errors above): rerun" \
		"'make pretrain NPROC=$(NPROC)' to resume from the last checkpoint in _build/pretrain-ddp/"; exit 1; }
endif

clean:
	rm -rf _build

# ---- Labs for teachers (tools/labs.py; see labs/README.md) ----
# make labs-release                       student versions: _build/labs/release/<lab>/<lab>.ipynb
# make labs-grade SUBMISSIONS=folder      grade every notebook in folder into _build/labs/grades.csv
LABS_OUT  ?= _build/labs
GRADES    ?= $(LABS_OUT)/grades.csv
LAB_JOBS  ?= 1
LAB_TIMEOUT ?= 120

.PHONY: labs-release labs-grade

labs-release: $(STAMP)
	$(PY) tools/labs.py release --out $(LABS_OUT)

labs-grade: fetch
	@test -n "$(SUBMISSIONS)" || { echo "usage: make labs-grade SUBMISSIONS=folder [GRADES=report.csv] [LAB_JOBS=2]"; exit 2; }
	$(PY) tools/labs.py grade "$(SUBMISSIONS)" --out "$(GRADES)" --jobs $(LAB_JOBS) --timeout $(LAB_TIMEOUT)
