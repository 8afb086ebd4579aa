# Entry points for people and CI. Every target that needs the environment runs `setup`
# first; it is idempotent and takes well under a second when nothing changed.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup render test lint

setup:
	bash scripts/setup.sh

# Renders the default forward-pass clip into media/.

render: setup
	$(BIN)/convviz render forward

# The tests also need a browser: Debian's chromium, for the web pages (tests/web).
test:
	bash scripts/setup.sh --browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
