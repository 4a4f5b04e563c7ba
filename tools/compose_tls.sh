#!/usr/bin/env bash
# The secrets of deploy/compose/tls.yml, made here and never committed (deploy/compose/tls/ is
# in .gitignore): a CA, a certificate for the compose services "exporter" and
# "exporter-offline" (and localhost), a random password for user "prometheus", its bcrypt
# hash in web-config.yml. Needs openssl, and Python with bcrypt (make venv: .venv/bin/python).
#
#   tools/compose_tls.sh            # writes deploy/compose/tls/; refuses to overwrite it
#   FORCE=1 tools/compose_tls.sh    # anew (a new CA: restart Prometheus and the exporters)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-deploy/compose/tls}  # OUT=FOLDER: elsewhere (the tests)
PY=${PYTHON:-.venv/bin/python}

if [ -e "$OUT/web-config.yml" ] && [ -z "${FORCE:-}" ]; then
  echo "$OUT/web-config.yml exists: FORCE=1 $0 to make everything anew" >&2
  exit 1
fi
mkdir -p "$OUT"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$scratch/ca.key" -out "$OUT/ca.crt" -days 825 \
  -subj "/CN=binance-exporter compose CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$OUT/tls.key" -out "$scratch/tls.csr" \
  -subj "/CN=exporter" 2>/dev/null
# the key identifiers: Python 3.13's strict verification (curl and Go do without) needs them
printf '%s\n' 'subjectAltName=DNS:exporter,DNS:exporter-offline,DNS:localhost,IP:127.0.0.1' \
  'extendedKeyUsage=serverAuth' 'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' \
  > "$scratch/ext"
openssl x509 -req -in "$scratch/tls.csr" -CA "$OUT/ca.crt" -CAkey "$scratch/ca.key" \
  -CAserial "$scratch/ca.srl" -CAcreateserial -out "$OUT/tls.crt" -days 825 \
  -extfile "$scratch/ext" 2>/dev/null

password=$(openssl rand -hex 24)
printf '%s' "$password" > "$OUT/prometheus-password"
hash=$(printf '%s' "$password" | "$PY" -c \
  'import sys, bcrypt; print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt()).decode())')
sed "s|^  prometheus: .*|  prometheus: $hash|" deploy/web-config/tls-basic-auth.yml \
  | grep -v '^# \(Replace\|  python\|This one\)' > "$OUT/web-config.yml"

# the exporter's container runs as 10001, Prometheus's as nobody (65534): each reads its own
if [ "$(id -u)" = 0 ]; then
  chown 10001 "$OUT/tls.key" && chmod 0400 "$OUT/tls.key"
  chown 65534 "$OUT/prometheus-password" && chmod 0400 "$OUT/prometheus-password"
else
  chmod 0644 "$OUT/tls.key" "$OUT/prometheus-password"
  echo "note: not root, so tls.key and prometheus-password are readable by every user here" >&2
fi
echo "wrote $OUT: ca.crt tls.crt tls.key web-config.yml prometheus-password"
echo "  docker compose -f docker-compose.yml -f deploy/compose/tls.yml up -d --build"
