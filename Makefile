# LLM from Scratch. The two commands a new user needs: `make book` and `make test`.
# Every target creates the virtual environment and fetches the offline assets when needed.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBDIR  := _build/nbtest
PYTEST_FLAGS ?=

.PHONY: help venv fetch export check-export notebooks test book lab pretrain clean

help:
	@echo "make book      build the course site into _build/html (executes every lesson)"
	@echo "make test      export check, every lesson and lab under nbval, and tests/"
	@echo "make lab       open the lessons as notebooks in JupyterLab"
	@echo "make fetch     fetch and verify the offline assets into data/"
	@echo "make export    regenerate llmscratch/ from the lessons' export cells"
	@echo "make pretrain  full-profile chapter 4 run that produces checkpoints/"

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

fetch: $(STAMP)
	$(PY) tools/fetch.py

export: $(STAMP)
	$(PY) tools/export.py

check-export: $(STAMP)
	$(PY) tools/export.py --check

notebooks: $(STAMP)
	rm -rf $(NBDIR)
	$(PY) tools/to_ipynb.py $(NBDIR) $(wildcard lessons/[0-9]*.md) $(wildcard labs/*.md)

test: fetch check-export notebooks
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
		$(NBDIR) tests $(PYTEST_FLAGS)

book: fetch check-export
	$(VENV)/bin/jupyter-book build --warningiserror --keep-going .
	@echo "site: _build/html/index.html"

lab: fetch
	$(PY) -m pip install --quiet "jupyterlab==4.5.*"
	$(VENV)/bin/jupyter lab --ServerApp.contents_manager_class=jupytext.TextFileContentsManager lessons

pretrain: fetch check-export
	LLMS_PROFILE=full $(PY) -m llmscratch.train

clean:
	rm -rf _build
