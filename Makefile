# Every target sets itself up: a fresh machine needs only python3 (>= 3.11).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Local database servers used by the tests when the variables are not set already.
SYNCD_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
SYNCD_TEST_MYSQL_URL    ?= mysql+pymysql://root@127.0.0.1:3306/test
export SYNCD_TEST_POSTGRES_URL SYNCD_TEST_MYSQL_URL

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo

test: $(STAMP)
	$(BIN)/ruff check syncd tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check syncd tests bench
	$(BIN)/ruff format --check syncd tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.bench_initial_sync

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
