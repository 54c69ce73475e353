# Passerelle: `make demo` runs one full sync cycle, `make test` runs every test.
# Both create the virtual environment (.venv) from requirements.txt on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: demo test lint migrate airflow bench bench-images bench-orders bench-latency bench-all compose-check clean trials

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# SHOP=prestashop|woocommerce|shopify|generic: the demo with that shop's formats (default: the
# configuration's dialect), files in var/shop/.
demo: $(STAMP)
	$(BIN)/python -m passerelle_demo.run $(if $(SHOP),--shop $(SHOP))

# Lint and format check first (seconds), then every test.
test: lint
	$(BIN)/python -m pytest

# ruff with the settings of pyproject.toml: linter (incl. Airflow's AIR rules) and formatter.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The state schema (passerelle) to the latest migration, through the Airflow connection
# passerelle_erp, or DSN=postgresql://... (docs/production.md, "Upgrading").
migrate: $(STAMP)
	$(BIN)/python -m passerelle.migrate $(if $(DSN),--dsn "$(DSN)") upgrade

# The Airflow UI on the project's DAGs (http://localhost:8080, user admin; its password is printed
# and kept in var/airflow/simple_auth_manager_passwords.json.generated), with the Passerelle view
# in its navigation (plugins/passerelle_plugin.py, docs/operators-desk.md). passerelle_demo.standalone
# puts .venv/bin first on PATH (standalone starts its components as `airflow` commands), uses the
# demo's back office and an FTP server over var/shop unless AIRFLOW_CONN_PASSERELLE_ERP/_SHOP are
# set, defines the connection airflow_api through which each run writes its note on the DAG run,
# creates the shop's pool, then runs `airflow standalone` (home var/airflow; `make demo` keeps its
# own, var/demo-airflow, so its runs never land here).
airflow: $(STAMP)
	$(BIN)/python -m passerelle_demo.standalone

# The fault and abuse suite (tests/trials): fuzzed inbound files, SIGKILLs of the import and the
# publish, faulty FTP and PostgreSQL servers, payloads and credentials. `make test` runs its fast
# part; this runs it all with the heavy rounds (TRIALS_FILES fuzzed files, TRIALS_ROUNDS kills of
# each kind), writes var/trials/trials.md (the table README.md shows; the pytest output is in
# var/trials/pytest.log, files that found something in var/trials/findings/) and prints the totals
# as one JSON object on its last line.
TRIALS_FILES  ?= 1000
TRIALS_ROUNDS ?= 50
trials: $(STAMP)
	@rm -rf var/trials && mkdir -p var/trials
	@start=$$(date +%s); \
	PASSERELLE_TRIALS=1 PASSERELLE_TRIALS_OUT=$(CURDIR)/var/trials/results.jsonl TRIALS_FILES=$(TRIALS_FILES) \
	  TRIALS_ROUNDS=$(TRIALS_ROUNDS) $(BIN)/python -m pytest tests/trials -q -rfEx >var/trials/pytest.log 2>&1; \
	status=$$?; grep -v "cannot be called outside of the Task Runner" var/trials/pytest.log | tail -n 20; \
	$(BIN)/python tests/trials/record.py var/trials/results.jsonl var/trials/trials.md $$start; exit $$status

bench: $(STAMP)
	$(BIN)/python bench/catalog_diff.py

bench-images: $(STAMP)
	$(BIN)/python bench/images.py

bench-orders: $(STAMP)
	$(BIN)/python bench/orders.py

# A back-office change to its file on the shop's server: the on-change flow under a real
# scheduler, triggerer and Celery worker (bench/latency.py; p50/p95 of 20 changes).
bench-latency: $(STAMP)
	$(BIN)/python bench/latency.py

# Every bench of issue 15 one after the other (34 minutes on a quiet 2-core machine); writes README.md's
# benchmark table and prints the figures as one JSON object on its last line (bench/all.py).
# QUICK=1: small sizes, to check the script; the table then goes to bench/out/, not README.md.
bench-all: $(STAMP)
	$(BIN)/python bench/all.py $(if $(QUICK),--quick)

# `docker compose config` without an engine (Debian's docker-compose v1 if the plugin is absent).
compose-check:
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || \
	  apt-get install -y --no-install-recommends docker-compose
	cp -n .env.example .env || true
	docker compose config >/dev/null 2>&1 || docker-compose config >/dev/null

clean:
	rm -rf var bench/out
