#!/usr/bin/env bash
# `make demo`: the Binance simulator and the exporter against it, no network needed.
# Simulator on http://127.0.0.1:8090 (SIM_PORT=... to change; its /_sim control API is
# what the README's examples call), metrics at http://localhost:8080/metrics (PORT=...).
# Ctrl-C stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8080}
SIM_PORT=${SIM_PORT:-8090}

log=$(mktemp)
"$BIN/binance-simulator" --host 127.0.0.1 --port "$SIM_PORT" --exit-with-parent >"$log" 2>&1 &
sim=$!
trap 'kill "$sim" 2>/dev/null; rm -f "$log"' EXIT INT TERM
url=""
for _ in $(seq 1 100); do
  url=$(grep -oE 'http://[0-9.:]+' "$log" || true)
  [ -n "$url" ] && break
  kill -0 "$sim" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo: the simulator did not start: $(cat "$log")" >&2; exit 1; }
cat <<MSG
demo: simulator (an offline Binance) at $url
demo:   faults:  curl -X POST $url/_sim/faults -d '{"faults": [{"name": "error_5xx"}]}'
demo:   stats:   curl $url/_sim/stats
demo:   report:  $BIN/binance-report --base-url $url --count 3 --interval 1
demo: exporter at http://localhost:$PORT/metrics (Ctrl-C stops both)
MSG
"$BIN/binance-exporter" --listen-address 127.0.0.1 --port "$PORT" --base-url "$url" "$@"
