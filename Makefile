# ReadingRoom: `make run` runs everything on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/readingroom
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test test-embedded test-services lint venv bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py serve --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run -v0

# The suite runs twice: embedded defaults, then PostgreSQL + Redis with a real Celery worker.
test: lint test-embedded test-services

test-embedded: $(STAMP)
	env -u DATABASE_URL -u REDIS_URL READINGROOM_DATA_DIR=$(CURDIR)/var/test-embedded \
		$(BIN)/pytest

test-services: $(STAMP)
	env DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) SECRET_KEY=test-only \
		READINGROOM_DATA_DIR=$(CURDIR)/var/test-services $(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
