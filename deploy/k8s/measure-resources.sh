#!/usr/bin/env bash
# Measures what each MedCov service uses as its own process, distributed (PostgreSQL and Redis
# on 127.0.0.1), to size the Kubernetes requests and limits (docs/deploy.md#measured-figures):
# resident memory at rest and at its peak under load, and CPU time per request.
#
#   cargo build --release -p medcov && bash deploy/k8s/measure-resources.sh
#
# Needs wrk (Debian package), psql and redis-cli. Uses its own database and Redis key prefix,
# ports 4100-4104, and removes them afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/medcov}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
DB="medcov_measure_$$"
PREFIX="medcov-measure-$$"
DATA=$(mktemp -d)
TICKS=$(getconf CLK_TCK)
declare -A PORT=([gateway]=4100 [auth]=4101 [hospital]=4102 [insurance]=4103 [billing]=4104)
declare -A PID=()

export MEDCOV__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DB"
export MEDCOV__REDIS__URL="redis://127.0.0.1:6379"
export MEDCOV__REDIS__KEY_PREFIX="$PREFIX"
export MEDCOV__DATA_DIR="$DATA"
export MEDCOV__LOG__LEVEL=warn
export MEDCOV__LOG__FORMAT=json
for s in "${!PORT[@]}"; do export "MEDCOV__SERVICES__${s^^}__PORT=${PORT[$s]}"; done
# Generous limits: this measures the services, not the rate limiter.
export MEDCOV__GATEWAY__RATE_LIMITS__API__PER_MINUTE=6000000 MEDCOV__GATEWAY__RATE_LIMITS__API__BURST=100000
export MEDCOV__GATEWAY__RATE_LIMITS__AUTH__PER_MINUTE=600000 MEDCOV__GATEWAY__RATE_LIMITS__AUTH__BURST=10000

cleanup() {
  for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q "postgresql://postgres@127.0.0.1:5432/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null || true
  redis-cli --scan --pattern "$PREFIX:*" | xargs -r redis-cli unlink >/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT

"$BIN" migrate >/dev/null
for s in auth hospital insurance billing gateway; do
  "$BIN" serve --target "$s" >"$DATA/$s.log" 2>&1 &
  PID[$s]=$!
done
for _ in $(seq 1 100); do
  "$BIN" health >/dev/null 2>&1 && break
  sleep 0.2
done
"$BIN" health >/dev/null

rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/${PID[$1]}/status"; }
peak() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/${PID[$1]}/status"; }
cpu() { awk -v t="$TICKS" '{print ($14 + $15) / t}' "/proc/${PID[$1]}/stat"; }
declare -A IDLE=()
for s in "${!PID[@]}"; do IDLE[$s]=$(rss "$s"); done

API="http://127.0.0.1:${PORT[gateway]}/api"
PASSWORD=$(sed -n 's/^password: //p' "$DATA/initial-admin.txt")
TOKEN=$(curl -sf "$API/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
HOSPITAL=$(curl -sf "$API/hospital/hospitals" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"Measure Hospital","code":"MSR","timezone":"Africa/Nairobi","currency":"KES"}' | sed 's/.*"id":"\([^"]*\)".*/\1/')
PATIENT=$(curl -sf "$API/hospital/patients" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d "{\"hospital_id\":\"$HOSPITAL\",\"given_name\":\"Amina\",\"family_name\":\"Okafor\",\"date_of_birth\":\"1984-03-09\",\"sex\":\"female\"}" \
  | sed 's/.*"id":"\([^"]*\)".*/\1/')

cat >"$DATA/register.lua" <<EOF
counter = 0
request = function()
  counter = counter + 1
  local body = '{"hospital_id":"$HOSPITAL","given_name":"Amina","family_name":"Okafor","date_of_birth":"1984-03-09","sex":"female","identifiers":[{"kind":"national_id","value":"' .. (math.random(1, 2000000000)) .. '"}]}'
  return wrk.format("POST", nil, {["content-type"] = "application/json", ["authorization"] = "Bearer $TOKEN"}, body)
end
EOF
cat >"$DATA/login.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"username":"admin","password":"$PASSWORD"}'
wrk.headers["content-type"] = "application/json"
EOF

# run <name> <connections> <wrk arguments...>: requests/s, and CPU ms per request of every
# service process.
printf '| load | requests/s | CPU ms per request: gateway / auth / hospital / insurance / billing |\n|---|---|---|\n'
run() {
  local name=$1 connections=$2; shift 2
  declare -A before=()
  for s in "${!PID[@]}"; do before[$s]=$(cpu "$s"); done
  local out rps
  out=$(wrk -t2 -c"$connections" -d"${SECONDS_PER_RUN}s" --timeout 10s "$@")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  local requests
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  local line=""
  for s in gateway auth hospital insurance billing; do
    line+=$(awk -v a="${before[$s]}" -v b="$(cpu "$s")" -v n="$requests" 'BEGIN {printf "%.2f", (b - a) * 1000 / n}')" / "
  done
  printf '| %s | %s | %s |\n' "$name" "${rps%.*}" "${line% / }"
}
run "GET a patient (read, audited)" 16 -H "authorization: Bearer $TOKEN" "$API/hospital/patients/$PATIENT"
run "GET a hospital (gateway cache)" 16 -H "authorization: Bearer $TOKEN" "$API/hospital/hospitals/$HOSPITAL"
run "POST a patient (write, event, saga)" 16 -s "$DATA/register.lua" "$API/hospital/patients"
# Each sign-in in flight holds argon2id's 19 MiB: a few at once, as the per-IP limit allows.
run "POST a sign-in (argon2id), 4 at once" 4 -s "$DATA/login.lua" "$API/auth/login"

printf '\n| service | RSS at rest (MiB) | peak RSS (MiB) |\n|---|---|---|\n'
for s in gateway auth hospital insurance billing; do
  printf '| %s | %s | %s |\n' "$s" "${IDLE[$s]}" "$(peak "$s")"
done
