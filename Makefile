# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 4730
HTTP_PORT ?= 8080

.PHONY: serve build test lint typecheck check docs bench bench-curves bench-smoke bench-cluster clean venv

# The install compiles the server's hot path with mypyc (setup.py); .compiled stamps that build, and a change to
# a source it may compile builds it again (about 40 s), so tests and the server never run stale compiled code.
HOT_SOURCES := setup.py $(wildcard src/geartrain/protocol/*.py src/geartrain/server/*.py src/geartrain/server/core/*.py \
	src/geartrain/store/*.py)

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.compiled

# make remakes this after .installed in the same run whatever the times say: the recipe checks them itself.
$(VENV)/.compiled: $(VENV)/.installed $(HOT_SOURCES)
	@if [ ! -e $@ ] || [ -n "$$(find $(HOT_SOURCES) -newer $@ | head -n 1)" ]; then \
		echo "$(PY) -m pip install -q --no-deps -e ."; $(PY) -m pip install -q --no-deps -e . || exit 1; fi
	touch $@

venv: $(VENV)/.installed

build: $(VENV)/.compiled

serve: $(VENV)/.compiled
	@echo "geartrain: Gearman on $(HOST):$(PORT), dashboard on http://$(HOST):$(HTTP_PORT)/ (docs/operations.md)"
	$(VENV)/bin/geartrain server --listen $(HOST) --port $(PORT) --http-listen $(HOST) --http-port $(HTTP_PORT)

test: $(VENV)/.compiled
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

check: lint typecheck test

# The documentation site into site/ (open site/index.html): the pages in docs/ and an API reference from the
# docstrings. --strict: a broken link, anchor or API reference fails the build.
$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,docs]'
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Side by side with the C gearmand (when installed): results in benchmarks/results/, plot in docs/.
bench: $(VENV)/.compiled
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) benchmarks/compare.py $(BENCH_ARGS)
	$(PY) benchmarks/plot.py --output docs/performance-roundtrip.png
	$(PY) benchmarks/curves.py $(CURVES_ARGS)

# How the cost grows (docs/performance.md): queue length, idle connections, payload, functions, one 100 MiB job;
# about 20 minutes and 9 GB of RAM for gearmand's 10M queue. Smaller: CURVES_ARGS="--skip-largest --reps 1" (~4 min).
bench-curves: $(VENV)/.compiled
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) benchmarks/curves.py $(CURVES_ARGS)

# Every workload once, small sizes (under a minute); figures printed, no thresholds.
bench-smoke: $(VENV)/.compiled
	$(PY) benchmarks/compare.py --smoke $(BENCH_ARGS)

# A cluster of two nodes on the local PostgreSQL against gearmand on its own PostgreSQL queue (about 25 minutes):
# submits, burn-down, cross-node round trips, takeover after kill -9. CLUSTER_ARGS=--flag=--store-ack --flag=submits
# Then PostgreSQL's own CPU per drained job with no server at all, a commit per job and per batch (the floor).
bench-cluster: $(VENV)/.compiled
	$(PY) benchmarks/cluster.py --jobs 200000 --reps 2 $(CLUSTER_ARGS)
	$(PY) benchmarks/postgres_floor.py --jobs 100000 --reps 3

clean:
	rm -rf $(VENV) build dist site *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
