# The bank's entry points. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt 2>/dev/null | sha1sum | cut -c1-12)
# The services the test suite needs; later issues add cassandra.
TEST_SERVICES ?= postgres redis kafka keycloak

.PHONY: help install run test test-sqlite test-postgres fuzz lint format schema services-up services-down services-status \
	bench bench-relay chaos clean

help:
	@echo "make run            serve the bank on 127.0.0.1:$(PORT) (SQLite, in-process events, e-mails as files in var/mail/)"
	@echo "make test           start the services the suite needs and run the whole suite"
	@echo "make fuzz           the API fuzzed from its OpenAPI schema with twenty times the budget of make test"
	@echo "make lint           ruff, mypy, import-linter, makemigrations --check"
	@echo "make services-up    start PostgreSQL, Redis, Kafka and Keycloak here; prints export lines for eval"
	@echo "make bench          every benchmark figure beside its peers; writes docs/benchmarks.md (BENCH_ONLY=ledger,http)"
	@echo "make bench-relay    events/s from PostgreSQL to Kafka by one relay, against the raw producer"
	@echo "make chaos          the bank under kill -9 and server restarts, checked; writes docs/reliability.md (CHAOS_ARGS=--only web,kafka)"
	@echo "make services-down  stop them"
	@echo "make schema         regenerate docs/openapi.yaml"

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -r requirements-dev.txt >&2
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: $(STAMP)
	@PORT=$(PORT) deploy/local/run-bank.sh

test: $(STAMP)
	@set -euo pipefail; \
	exports="$$(FINTECH_SERVICES="$(TEST_SERVICES)" deploy/local/services.sh up)"; \
	eval "$$exports"; \
	$(MAKE) --no-print-directory test-sqlite; \
	$(MAKE) --no-print-directory test-postgres DATABASE_URL="$$DATABASE_URL" REDIS_URL="$$REDIS_URL" \
		KAFKA_BOOTSTRAP_SERVERS="$$KAFKA_BOOTSTRAP_SERVERS" OIDC_ISSUER="$$OIDC_ISSUER"

# The embedded default: SQLite, every test except those that need PostgreSQL, Kafka, Redis or Keycloak.
test-sqlite: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL -u KAFKA_BOOTSTRAP_SERVERS -u OIDC_ISSUER $(PY) -m pytest \
		-m "not postgres and not kafka and not redis and not keycloak" -p no:cacheprovider $(PYTEST_ARGS)

# The system of record: the whole suite on PostgreSQL, with the real broker, Redis and Keycloak (all must be set).
# The suite keeps the dev issuer: Keycloak's issuer reaches only tests/test_keycloak.py, as FINTECH_TEST_KEYCLOAK_ISSUER.
test-postgres: $(STAMP)
	@test -n "$(DATABASE_URL)" || { echo "test-postgres needs DATABASE_URL (eval \"\$$(make -s services-up)\")" >&2; exit 1; }
	@test -n "$(KAFKA_BOOTSTRAP_SERVERS)" || { echo "test-postgres needs KAFKA_BOOTSTRAP_SERVERS" >&2; exit 1; }
	@test -n "$(REDIS_URL)" || { echo "test-postgres needs REDIS_URL" >&2; exit 1; }
	@test -n "$(OIDC_ISSUER)" || { echo "test-postgres needs OIDC_ISSUER (Keycloak's fintech realm)" >&2; exit 1; }
	env -u OIDC_ISSUER FINTECH_TEST_KEYCLOAK_ISSUER="$(OIDC_ISSUER)" \
	DATABASE_URL="$(DATABASE_URL)" KAFKA_BOOTSTRAP_SERVERS="$(KAFKA_BOOTSTRAP_SERVERS)" REDIS_URL="$(REDIS_URL)" \
		$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The fuzz test of `make test` (tests/test_fuzz_api.py) with a bigger budget: FUZZ_EXAMPLES
# requests per operation, mode and caller (the suite runs FINTECH_FUZZ_EXAMPLES=6).
FUZZ_EXAMPLES ?= 120
fuzz: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL -u KAFKA_BOOTSTRAP_SERVERS -u OIDC_ISSUER FINTECH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		$(PY) -m pytest -p no:cacheprovider tests/test_fuzz_api.py $(PYTEST_ARGS)

# Not a test: a measurement on the real services, written down in docs/benchmarks.md.
bench-relay: $(STAMP)
	@set -euo pipefail; \
	exports="$$(FINTECH_SERVICES="postgres kafka" deploy/local/services.sh up)"; \
	eval "$$exports"; \
	$(PY) manage.py migrate --noinput -v 0; \
	$(PY) manage.py relay_outbox --once --sink kafka >/dev/null; \
	$(PY) manage.py bench_relay --events $${BENCH_EVENTS:-50000} --rounds $${BENCH_ROUNDS:-5}

# Not a test either: the whole benchmark (bench/, docs/benchmarks.md), against django-hordak and a
# PL/pgSQL floor, in the database fintech_bench. BENCH_ONLY=transfers,statements,ledger,batch,hot,http,reads,relay
# picks sections; BENCH_ARGS passes counts (python -m bench --help). vegeta (MIT) is built outside git.
BENCH_ONLY ?=
BENCH_ARGS ?=
BENCH_STATE := /var/tmp/fintech-local/bench
VEGETA := $(BENCH_STATE)/bin/vegeta
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements-bench.txt 2>/dev/null | sha1sum | cut -c1-12)

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	@$(PY) -m pip install --quiet -r requirements-bench.txt >&2
	@rm -f $(VENV)/.bench-* && touch $@

$(VEGETA):
	@mkdir -p $(BENCH_STATE)/bin
	@command -v go >/dev/null && GOBIN=$(BENCH_STATE)/bin go install github.com/tsenart/vegeta/v12@v12.13.0 \
		|| echo "vegeta did not build; the HTTP sections will say so" >&2

bench: $(BENCH_STAMP)
	@set -euo pipefail; \
	$(MAKE) --no-print-directory $(VEGETA); \
	exports="$$(FINTECH_SERVICES="postgres kafka" deploy/local/services.sh up)"; \
	eval "$$exports"; \
	timeout --signal=TERM --kill-after=60 $${BENCH_TIMEOUT:-2400} $(PY) -m bench --only "$(BENCH_ONLY)" $(BENCH_ARGS)

# Not a test either (about 30 minutes on two busy cores): the bank under faults (chaos/, docs/reliability.md). It starts its
# own PostgreSQL and Kafka on loopback in a directory of its own, serves the bank, kills its processes and
# restarts the servers while the load runs, and checks what the bank did. CHAOS_ARGS passes options
# (python -m chaos --help), e.g. CHAOS_ARGS="--only web,postgres --transfers 100".
CHAOS_ARGS ?=

chaos: $(STAMP)
	@timeout --signal=TERM --kill-after=60 $${CHAOS_TIMEOUT:-3000} $(PY) -m chaos $(CHAOS_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	FINTECH_TEST_APPS=tests.spine $(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	env -u DATABASE_URL $(PY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

schema: $(STAMP)
	env -u DATABASE_URL $(PY) manage.py spectacular --file docs/openapi.yaml --validate

services-up:
	@deploy/local/services.sh up

services-down:
	@deploy/local/services.sh down

services-status:
	@deploy/local/services.sh status

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
