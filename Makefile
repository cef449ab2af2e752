# Meterway — the two commands are `make dev` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CONSOLE_SOURCES := console/package.json console/package-lock.json console/index.html console/vite.config.ts \
                   console/tsconfig.json $(shell find console/src -type f 2>/dev/null)
# Inside node_modules, so deleting node_modules by hand also brings `npm ci` back.
NPM_STAMP := console/node_modules/.installed
NEED_NPM  := @command -v npm >/dev/null || { echo "make: npm not found; the console needs Node.js 20+ and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }

.PHONY: install console dev test lint unit integration e2e bench build build-report deploy clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

## console: build the static console into console/dist (served at / by the local stack)
console: console/dist/index.html

$(NPM_STAMP): console/package.json console/package-lock.json
	$(NEED_NPM)
	cd console && npm ci --no-audit --no-fund
	touch $@

console/dist/index.html: $(NPM_STAMP) $(CONSOLE_SOURCES)
	$(NEED_NPM)
	cd console && npm run build
	touch $@

## dev: start the whole stack locally on http://127.0.0.1:$${MW_PORT:-3000}
dev: install console
	$(BIN)/python -m devstack

## test: lint, then unit, integration, e2e and browser tests (the console is built first)
test: lint console
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration

e2e: install console
	$(BIN)/python -m pytest -q tests/e2e

## bench: the proxy's overhead against LiteLLM's (installed into .bench/ on first use), then its cost per request
bench: install
	$(BIN)/python bench/proxy_overhead.py
	$(BIN)/python bench/gateway_cost.py

## build: sam build into $(SAM_BUILD_DIR), offline but for PyPI: no Docker, no AWS credentials, no Python 3.12
## (with PYTHON=python3.12, the runtime's version, the code and the layer carry bytecode: functions/Makefile)
SAM_BUILD_DIR ?= .aws-sam/build
# The SAM CLI of the venv, with the venv first on PATH (layers/Makefile runs its pip). SAM's own state
# goes to a project folder instead of ~/.aws-sam: telemetry is off, and its weekly PyPI version check,
# which has no switch (aws/aws-sam-cli#3709), is skipped for a week after the lastVersionCheck there,
# stamped before every run (a float: SAM ignores an integer).
SAM_HOME := $(abspath .aws-sam/cli)
SAM = mkdir -p $(SAM_HOME) && printf '{"lastVersionCheck": %s.0}\n' "$$(date +%s)" > $(SAM_HOME)/metadata.json && \
      SAM_CLI_TELEMETRY=0 __SAM_CLI_APP_DIR=$(SAM_HOME) PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam

build: install
	$(SAM) build --build-dir $(SAM_BUILD_DIR)

## build-report: the built artifact's sizes and its handlers' import times (builds first if there is no build)
build-report: install
	$(BIN)/python bench/build_report.py --build-dir $(SAM_BUILD_DIR)

## deploy: sam build, sam deploy (GUIDED=1 asks for the settings and saves them in samconfig.toml),
## the console to its bucket, then the URLs and next steps. Needs AWS credentials; STACK and REGION
## (default: your AWS configuration's) say where.
STACK ?= meterway
REGION ?=
WHERE = --stack-name $(STACK) $(if $(REGION),--region $(REGION))

# SAM reads (and a guided deploy writes) samconfig.toml next to the template it deploys, which is the
# built one: name the project's file.
deploy: build console
	$(SAM) deploy $(if $(GUIDED),--guided) --template-file $(SAM_BUILD_DIR)/template.yaml \
	    --config-file $(CURDIR)/samconfig.toml $(WHERE)
	$(BIN)/python scripts/publish_console.py $(WHERE)
	$(BIN)/python scripts/stack_outputs.py $(WHERE)

clean:
	rm -rf $(VENV) .bench .aws-sam .pytest_cache .mypy_cache .ruff_cache .meterway console/dist console/node_modules
