#!/usr/bin/env bash
# `make demo`: the Binance simulator and the exporter against it, no network needed.
# Simulator on http://127.0.0.1:8090 (SIM_PORT=... to change; its /_sim control API is
# what docs/development.md's examples call), metrics at http://localhost:8080/metrics (PORT=...).
# STREAM=1: the exporter in stream mode, on the simulator's WebSocket streams at
# ws://127.0.0.1:8091 (SIM_WS_PORT=...). Ctrl-C stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8080}
SIM_PORT=${SIM_PORT:-8090}
SIM_WS_PORT=${SIM_WS_PORT:-8091}
STREAM=${STREAM:-}

log=$(mktemp)
"$BIN/binance-simulator" --host 127.0.0.1 --port "$SIM_PORT" --ws-port "$SIM_WS_PORT" \
  --exit-with-parent >"$log" 2>&1 &
sim=$!
trap 'kill "$sim" 2>/dev/null; rm -f "$log"' EXIT INT TERM
url=""
for _ in $(seq 1 100); do
  url=$(grep -oE 'http://[0-9.:]+' "$log" || true)
  ws=$(grep -oE 'ws://[0-9.:]+' "$log" || true)
  [ -n "$url" ] && [ -n "$ws" ] && break
  kill -0 "$sim" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo: the simulator did not start: $(cat "$log")" >&2; exit 1; }
cat <<MSG
demo: simulator (an offline Binance) at $url, its streams at $ws
demo:   faults:  curl -X POST $url/_sim/faults -d '{"faults": [{"name": "error_5xx"}]}'
demo:            curl -X POST $url/_sim/faults -d '{"faults": [{"name": "ws_gap", "rate": 0.05}]}'
demo:   stats:   curl $url/_sim/stats
demo:   report:  $BIN/binance-report --base-url $url --count 3 --interval 1
demo:            $BIN/binance-report --base-url $url --source stream --stream-url $ws --count 3
demo: exporter at http://localhost:$PORT/metrics${STREAM:+ in stream mode} (Ctrl-C stops both)
MSG
source=()
[ -n "$STREAM" ] && source=(--source stream --stream-url "$ws")
"$BIN/binance-exporter" --listen-address 127.0.0.1 --port "$PORT" --base-url "$url" \
  "${source[@]}" "$@"
