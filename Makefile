# Two commands do everything (see README): `make book` and `make test`.
# Each creates the virtualenv .venv on first use and installs requirements.txt into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= full
NOTEBOOKS ?= $(sort $(wildcard book/[0-9]*.ipynb))

.PHONY: book test execute readers format lab install clean

book: $(VENV)/installed  ## build the website into _build/html; fails on stale or broken chapters
	$(BIN)/python -m normlab.notebooks check $(NOTEBOOKS)
	$(BIN)/jupyter-book build --all . -W -n --keep-going

test: $(VENV)/installed  ## run every test (conftest.py picks the smoke profile): units, nbval, book build
	$(BIN)/python -m pytest

execute: $(VENV)/installed  ## re-execute the chapters in place (PROFILE=full by default), stamp them, write their readers
	$(BIN)/python -m normlab.notebooks execute --profile $(PROFILE) $(NOTEBOOKS)

readers: $(VENV)/installed  ## regenerate the reader notebooks (notebooks/book/) from the executed chapters
	$(BIN)/python -m normlab.notebooks readers $(NOTEBOOKS)

format: $(VENV)/installed  ## format the chapters' code to fit the website's code column
	$(BIN)/ruff format --isolated --line-length 99 book

lab: $(VENV)/installed  ## open the reader notebooks (the chapters in plain Markdown) in JupyterLab
	$(BIN)/jupyter lab notebooks/book/

install: $(VENV)/installed

$(VENV)/installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf _build
