#!/usr/bin/env bash
# Smoke test of the real image (`make docker-smoke`; needs Docker and root, not run by CI).
#
#   tools/docker_smoke.sh                      # base: a local stand-in of python:3.11-slim
#   PYTHON_IMAGE=python:3.11.13-slim-bookworm tools/docker_smoke.sh   # where Docker Hub is reachable
#
# Without PYTHON_IMAGE it runs ../shared/tools/docker-standin.sh, which installs Docker if
# needed, starts dockerd and builds the stand-in base. Then it builds the image, runs the
# simulator and the exporter from it with --network host (all traffic stays on 127.0.0.1)
# and checks: /metrics answers with binance_up 1, Docker's health check turns healthy, the
# process is not root, the other console scripts work, nothing of the build is left, and
# SIGTERM stops the exporter with status 0. Its containers are removed however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${SMOKE_IMAGE:-binance-exporter:smoke}
SIM_IMAGE=${SMOKE_SIM_IMAGE:-binance-simulator:smoke}
STANDIN=${STANDIN_IMAGE:-local/python-standin:3.11}
STANDIN_SCRIPT=../shared/tools/docker-standin.sh
SIMULATOR=binance-smoke-simulator-$$
EXPORTER=binance-smoke-exporter-$$
WAIT=${SMOKE_WAIT_SECONDS:-60}

step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAIL: $*" >&2
  for c in "$EXPORTER" "$SIMULATOR"; do
    docker logs --tail 30 "$c" 2>&1 | sed "s/^/  [$c] /" >&2 || true
  done
  exit 1
}
cleanup() { docker rm -f "$EXPORTER" "$SIMULATOR" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# GET a URL on this machine: prints the body, fails on any error or non-2xx status
get() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    sys.stdout.write(response.read().decode())
EOF
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# retry "what" command...: runs the command once a second until it succeeds or WAIT runs out
retry() {
  local what=$1; shift
  for _ in $(seq "$WAIT"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  fail "$what (waited ${WAIT}s)"
}

step "Docker and the base image"
if [ -n "${PYTHON_IMAGE:-}" ]; then
  docker info >/dev/null 2>&1 || { echo "docker is not running" >&2; exit 1; }
else
  [ -x "$STANDIN_SCRIPT" ] || [ -f "$STANDIN_SCRIPT" ] \
    || { echo "no $STANDIN_SCRIPT: set PYTHON_IMAGE to a base image you can pull" >&2; exit 1; }
  bash "$STANDIN_SCRIPT"
  PYTHON_IMAGE=$STANDIN
fi

step "docker build (base $PYTHON_IMAGE)"
docker build --quiet --network host --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" -t "$IMAGE" .
docker build --quiet --network host --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
  --target simulator -t "$SIM_IMAGE" .
docker image ls "$IMAGE"; docker image ls "$SIM_IMAGE"

step "simulator from its image (the simulator target)"
SIM_PORT=$(free_port)
WS_PORT=$(free_port)
docker run -d --name "$SIMULATOR" --network host \
  "$SIM_IMAGE" --host 127.0.0.1 --port "$SIM_PORT" --ws-port "$WS_PORT" >/dev/null
retry "simulator answers /api/v3/ping" get "http://127.0.0.1:$SIM_PORT/api/v3/ping"
echo "simulator on http://127.0.0.1:$SIM_PORT"

step "exporter from the image"
PORT=$(free_port)
# port and address as environment variables: the image's health check reads them
docker run -d --name "$EXPORTER" --network host \
  --health-interval 2s --health-timeout 5s --health-start-period 2s --health-retries 3 \
  -e BINANCE_LISTEN_ADDRESS=127.0.0.1 -e BINANCE_LISTEN_PORT="$PORT" \
  "$IMAGE" --base-url "http://127.0.0.1:$SIM_PORT" >/dev/null
retry "exporter landing page answers" get "http://127.0.0.1:$PORT/"
echo "exporter on http://127.0.0.1:$PORT"

step "check: /metrics has binance_up 1 and spreads"
metrics_ok() {
  local text
  text=$(get "http://127.0.0.1:$PORT/metrics") || return 1
  grep -Eq '^binance_up 1(\.0)?$' <<<"$text" && grep -q '^binance_price_spread{' <<<"$text"
}
retry "/metrics shows binance_up 1 with spreads" metrics_ok
scrape=$(get "http://127.0.0.1:$PORT/metrics")
grep -E '^binance_up ' <<<"$scrape"
grep -E '^binance_price_spread\{' <<<"$scrape" | head -3

step "check: Docker's health check turns healthy"
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$EXPORTER")" = healthy ]; }
retry "container healthy" healthy
docker inspect -f 'health: {{.State.Health.Status}} ({{len .State.Health.Log}} checks)' "$EXPORTER"

step "check: not root"
uid=$(docker exec "$EXPORTER" id -u)
user=$(docker inspect -f '{{.Config.User}}' "$IMAGE")
echo "uid in the container: $uid; image USER: $user"
[ "$uid" != 0 ] || fail "the exporter runs as root"
case "$user" in ""|root|0|0:*|root:*) fail "the image's USER is root ($user)";; esac

step "check: the other console scripts and the image's contents"
docker run --rm --network host --entrypoint binance-report "$IMAGE" \
  --base-url "http://127.0.0.1:$SIM_PORT" --count 0 >/dev/null \
  || fail "binance-report against the simulator"
echo "binance-report --count 0: ok"
docker run --rm --network host --entrypoint binance-report "$IMAGE" \
  --base-url "http://127.0.0.1:$SIM_PORT" --source stream --stream-url "ws://127.0.0.1:$WS_PORT" \
  --count 1 --interval 1 >/dev/null \
  || fail "binance-report --source stream against the simulator's streams"
echo "binance-report --source stream --count 1: ok"
docker run --rm --user 0 --entrypoint sh "$IMAGE" -c '
  for tool in gcc cc g++ make /opt/venv/bin/pip; do
    if command -v "$tool" >/dev/null 2>&1; then echo "left in the image: $tool"; exit 1; fi
  done
  if [ -e /root/.cache/pip ]; then echo "left in the image: a pip cache"; exit 1; fi
' || fail "build leftovers in the final image"
echo "no compiler, no pip in the venv, no pip cache"
if docker run --rm --entrypoint python "$IMAGE" -c 'import binance_simulator' >/dev/null 2>&1 \
   || docker run --rm --entrypoint sh "$IMAGE" -c 'command -v binance-simulator' >/dev/null; then
  fail "the simulator is in the production image"
fi
echo "no simulator in the production image"

step "check: SIGTERM stops the exporter cleanly"
docker stop --time 10 "$EXPORTER" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$EXPORTER")
[ "$code" = 0 ] || fail "exit status $code after SIGTERM"
echo "exit status 0"

printf '\ndocker smoke test: all checks passed\n'
