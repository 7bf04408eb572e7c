# Two commands do all setup on a fresh machine:
#   make demo   - create .venv if missing, init the warehouse, ingest the bundled offline demo sources
#   make test   - create .venv if missing, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/newsflow init
	$(VENV)/bin/newsflow ingest
	$(VENV)/bin/newsflow sql "select source, count(*) as articles from articles group by source order by source"

test: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.prefect-test $(PY) tests/netns.py $(VENV)/bin/pytest -q

clean:
	rm -rf $(VENV) .prefect-test newsflow newsflow.duckdb build dist *.egg-info
