# Set-up, run and test. Every target creates the virtualenv on demand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= data
STAMP  := $(VENV)/.installed

.PHONY: install run test bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(DATA)/homeserver.yaml: | $(STAMP)
	$(PY) -m homeserver generate --server-name localhost --data-dir $(DATA) --http-port 8008

run: $(STAMP) $(DATA)/homeserver.yaml
	$(PY) -m homeserver run --config $(DATA)/homeserver.yaml

test: $(STAMP)
	$(PY) -m twisted.trial --reactor=asyncio --temp-directory=.trial_temp tests

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) _trial_temp* build *.egg-info
