# Set-up, run and test. Every target creates the virtualenv on demand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   ?= data
STAMP  := $(VENV)/.installed
# The real-client tests' npm packages (matrix-js-sdk, Hydrogen, puppeteer-core), pinned
# in tests/clients/package-lock.json
CLIENTS    := tests/clients
NODE_STAMP := $(CLIENTS)/node_modules/.installed
SYNAPSE_SH ?= ../shared/anchors/synapse.sh

.PHONY: install run test bench bench-federation synapse-anchor clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NODE_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

$(DATA)/homeserver.yaml: | $(STAMP)
	$(PY) -m homeserver generate --server-name localhost --data-dir $(DATA) --http-port 8008

run: $(STAMP) $(DATA)/homeserver.yaml
	$(PY) -m homeserver run --config $(DATA)/homeserver.yaml

# the interop tests (tests/interop/) federate with a real Synapse: install it first
test: $(STAMP) $(NODE_STAMP) synapse-anchor
	$(PY) -m twisted.trial --reactor=asyncio --temp-directory=.trial_temp tests

# Synapse (the benchmarks' reference) installs into its own venv while ours does
bench:
	$(MAKE) -j2 $(STAMP) synapse-anchor
	$(PY) -m bench

# remote join time and delivery latency, ours <-> Synapse and ours <-> ours
bench-federation:
	$(MAKE) -j2 $(STAMP) synapse-anchor
	$(PY) -m bench.federation --pair

# without the anchor script or a network the interop tests skip, saying why
synapse-anchor:
	@if [ -f $(SYNAPSE_SH) ]; then bash $(SYNAPSE_SH) install || \
	  echo "WARNING: Synapse install failed; tests/interop will be skipped"; \
	else echo "WARNING: $(SYNAPSE_SH) not found; tests/interop will be skipped"; fi

clean:
	rm -rf $(VENV) _trial_temp* build *.egg-info $(CLIENTS)/node_modules
