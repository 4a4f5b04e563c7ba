#!/usr/bin/env bash
# `make demo`: the Binance simulator and the exporter against it, no network needed.
# Metrics at http://localhost:8080/metrics (PORT=... to change); Ctrl-C stops both.
set -euo pipefail
BIN=${BIN:-.venv/bin}
PORT=${PORT:-8080}

log=$(mktemp)
"$BIN/binance-simulator" --host 127.0.0.1 --port 0 --exit-with-parent >"$log" &
sim=$!
trap 'kill "$sim" 2>/dev/null; rm -f "$log"' EXIT INT TERM
for _ in $(seq 1 100); do
  url=$(grep -oE 'http://[0-9.:]+' "$log" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "demo: the simulator did not start" >&2; exit 1; }
echo "demo: simulator at $url; exporter at http://localhost:$PORT/metrics (Ctrl-C stops both)"
"$BIN/binance-exporter" --listen-address 127.0.0.1 --port "$PORT" --base-url "$url" "$@"
