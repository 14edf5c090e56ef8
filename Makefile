# Two commands on a fresh machine: `make demo` runs the demo, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo monitor test unit integration faults bench chaos worker flower beat lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

demo: $(STAMP)  ## publish sample chat events and watch them delivered, signed, retried, dead-lettered, replayed
	$(PY) -m demo

monitor: $(STAMP)  ## the Prometheus /metrics of a real worker and of the exporter after a few deliveries (--serve keeps them up)
	$(PY) -m demo.monitor $(MONITOR_ARGS)

test: $(STAMP)  ## every test: unit, integration (real Redis, worker, TLS) and faults
	$(PY) -m pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

faults: $(STAMP)
	$(PY) -m pytest -q tests/faults

$(VENV)/.bench-installed: pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,demo,bench]'
	touch $@

bench: $(VENV)/.bench-installed  ## side by side with a plain Celery task, publish latency, isolation (figures in docs/performance.md)
	$(PY) -m bench

chaos: $(STAMP)  ## a minute of steady load with random faults; prints the ledger table
	$(PY) -m bench.chaos

worker: $(STAMP)
	$(VENV)/bin/celery -A workers worker -l INFO

beat: $(STAMP)
	$(VENV)/bin/celery -A workers beat -l INFO

flower: $(STAMP)
	$(VENV)/bin/celery -A workers flower --conf=config/flowerconfig.py

clean:
	rm -rf $(VENV) .demo build dist *.egg-info .pytest_cache
