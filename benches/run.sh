#!/usr/bin/env bash
# The send benchmark and the sign-up load test, on one machine.
#
#   bash benches/run.sh                 # 10,000 and 100,000 readers, SQLite and PostgreSQL
#   READERS=10000 BACKENDS=sqlite bash benches/run.sh
#   PARTS=signup bash benches/run.sh     # only the sign-up load test
#   RTT_MS=20 READERS= bash benches/run.sh   # only a relay at a distance: a delaying
#                                            # proxy, msg/s per connection against lettre
#   READERS= DKIM_READERS=0 PARTS=send bash benches/run.sh
#                                       # only the send through `newsletter serve` processes
#                                       # (PROCESS_READERS, 20,000), with sign-ups under load
#
# Starts Postfix's smtp-sink on loopback (installing Debian's postfix if it is
# missing), runs `cargo bench --bench send`, then drives the sign-up endpoint
# with wrk, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

READERS="${READERS-10000,100000}"
BACKENDS="${BACKENDS:-sqlite,postgres}"
PARTS="${PARTS:-send,signup}"
RTT_MS="${RTT_MS:-}"
RTT_READERS="${RTT_READERS:-2000}"
# The DKIM comparison and the send through `newsletter serve` processes; both
# are left out of a relay-at-a-distance run unless asked for.
if [[ -n $RTT_MS ]]; then default_extra=0; else default_extra=""; fi
DKIM_READERS="${DKIM_READERS:-${default_extra:-10000}}"
PROCESS_READERS="${PROCESS_READERS:-${default_extra:-20000}}"
CONCURRENCY="${CONCURRENCY:-16}"
SINK_PORT="${SINK_PORT:-2525}"
HTTP_PORT="${HTTP_PORT:-18080}"
PG_URL="${NEWSLETTER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need smtp-sink || ! need wrk; then
  apt-get update -qq
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix wrk >/dev/null
fi
if [[ "$BACKENDS" == *postgres* ]] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi

# PostgreSQL on this machine is reached through its Unix socket, as README's
# "Production" advises: over TCP it encrypts even a loopback connection by
# default, a share of the server's CPU that production need not pay.
pg_socket_dir=/var/run/postgresql
if [[ -z ${NEWSLETTER_TEST_POSTGRES_URL:-} && -S $pg_socket_dir/.s.PGSQL.5432 ]]; then
  PG_URL="postgres://postgres@localhost/test?host=$pg_socket_dir"
fi

work=$(mktemp -d)
pids=()
# The sign-up load makes a PostgreSQL database per run; it goes at the end.
load_databases=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${load_databases[@]}"; do
    psql "$PG_URL" -qc "drop database if exists $db with (force)" || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

smtp-sink -u nobody "127.0.0.1:$SINK_PORT" 1024 &
pids+=($!)
sleep 0.5

if [[ $PARTS == *send* ]]; then
  echo "## Send path"
  rtt=()
  [[ -n $RTT_MS ]] && rtt=(--rtt-ms "$RTT_MS" --rtt-readers "$RTT_READERS")
  cargo bench --bench send -- --smtp "127.0.0.1:$SINK_PORT" --readers "$READERS" \
    --backends "$BACKENDS" --concurrency "$CONCURRENCY" --postgres "$PG_URL" \
    --dkim-readers "$DKIM_READERS" --process-readers "$PROCESS_READERS" "${rtt[@]}"
fi
[[ $PARTS == *signup* ]] || exit 0

echo
echo "## Sign-up under load (wrk, 2 threads, 64 connections, 10 s)"
echo
cargo build --release --quiet
for backend in ${BACKENDS//,/ }; do
  if [[ $backend == sqlite ]]; then
    db="sqlite://$work/load.db"
  else
    name="nl_load_$RANDOM$RANDOM"
    psql "$PG_URL" -qc "create database $name"
    load_databases+=("$name")
    base="${PG_URL%%\?*}"
    db="${base%/*}/$name${PG_URL#"$base"}"
  fi
  NEWSLETTER_LISTEN="127.0.0.1:$HTTP_PORT" NEWSLETTER_DATABASE_URL="$db" \
  NEWSLETTER_MAIL__SMTP_URL="smtp://127.0.0.1:$SINK_PORT" \
  NEWSLETTER_SUBSCRIPTION__SIGNUPS_PER_IP_PER_HOUR=0 NEWSLETTER_LOG__FILTER=warn \
    ./target/release/newsletter serve &
  server=$!
  pids+=($server)
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$HTTP_PORT/health" >/dev/null && break; sleep 0.2; done
  echo "### $backend: GET /health (baseline)"
  wrk -t2 -c64 -d10s --latency "http://127.0.0.1:$HTTP_PORT/health" | grep -E "Requests/sec|^ +(50|99)%"
  echo "### $backend: POST /subscriptions"
  wrk -t2 -c64 -d10s --latency -s benches/signup.lua "http://127.0.0.1:$HTTP_PORT" | grep -E "Requests/sec|^ +(50|99)%|Non-2xx"
  kill "$server"; wait "$server" 2>/dev/null || true
done
