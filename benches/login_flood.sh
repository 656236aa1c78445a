#!/usr/bin/env bash
# Memory under a login flood. Starts `newsletter serve` on SQLite, sends 60
# logins at once for a known editor, then 1,000 in all (half of them with a
# 60 kB address), each from its own client address so that none is
# throttled and every one that gets a slot runs a full password check.
# Prints the resident memory before, after and at its peak, and the answers
# by status; fails when the peak passes LIMIT_MB.
#
#   bash benches/login_flood.sh
#   PROFILE=dev ATTEMPTS=3000 bash benches/login_flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-release}"
HTTP_PORT="${HTTP_PORT:-18081}"
ATTEMPTS="${ATTEMPTS:-1000}"
PARALLEL="${PARALLEL:-60}"
LIMIT_MB="${LIMIT_MB:-150}"

cargo build --profile "$PROFILE" --quiet --bin newsletter
dir=$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
bin="./target/$dir/newsletter"

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

base="http://127.0.0.1:$HTTP_PORT"
export NEWSLETTER_DATABASE_URL="sqlite://$work/flood.db"
export NEWSLETTER_LISTEN="127.0.0.1:$HTTP_PORT"
export NEWSLETTER_BASE_URL="$base"
export NEWSLETTER_MAIL__OUTBOX_DIR="$work/outbox"
export NEWSLETTER_CLIENT_IP_HEADER="X-Forwarded-For"
export NEWSLETTER_LOG__FILTER=error

echo "tulip-marrow-casket-1987" | "$bin" admin add editor@example.com >/dev/null
"$bin" serve 2>"$work/server.log" &
server=$!
for _ in $(seq 1 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.1; done

mb() { awk -v key="$1:" '$1 == key { printf "%d", $2 / 1024 }' "/proc/$server/status"; }

# One attempt: $1 is its number, which picks the client and the address.
cat >"$work/attempt.sh" <<'EOF'
i=$1
client="10.$(( i / 65536 % 256 )).$(( i / 256 % 256 )).$(( i % 256 ))"
if (( i % 2 )); then body="@$WORK/long.body"; else body="email=editor%40example.com&password=guess$i"; fi
curl -s -o /dev/null -w '%{http_code}\n' -H "X-Forwarded-For: $client" \
  --data-binary "$body" -H 'content-type: application/x-www-form-urlencoded' "$BASE/admin/login"
EOF
{ printf 'email='; head -c 61440 /dev/zero | tr '\0' 'a'; printf '%%40example.com&password=guess'; } >"$work/long.body"
export WORK="$work" BASE="$base"

before=$(mb VmRSS)
seq 1 60 | xargs -P 60 -I{} bash "$work/attempt.sh" {} >"$work/codes"
after_burst=$(mb VmRSS)
seq 61 "$ATTEMPTS" | xargs -P "$PARALLEL" -I{} bash "$work/attempt.sh" {} >>"$work/codes"
after=$(mb VmRSS)
peak=$(mb VmHWM)

echo "login flood: $ATTEMPTS attempts ($PROFILE build), $PARALLEL at a time after a burst of 60"
echo "  answers: $(sort "$work/codes" | uniq -c | awk '{ printf "%s×%s ", $2, $1 }')"
echo "  RSS: ${before} MB before, ${after_burst} MB after the burst, ${after} MB after, peak ${peak} MB (limit ${LIMIT_MB} MB)"
if (( peak > LIMIT_MB )); then
  echo "FAIL: the peak passed ${LIMIT_MB} MB" >&2
  exit 1
fi
