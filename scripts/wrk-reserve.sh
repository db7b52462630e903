#!/usr/bin/env bash
# Cross-check of the buyers' reserve path with an outside load generator (wrk):
# starts 3 local release nodes on loopback, creates one event with a general section of
# $SEATS tickets, and runs wrk with $CONNECTIONS connections for $DURATION seconds, every
# request `{event_id, section: "GA", quantity: 1|2}` as a different user. Afterwards it checks
# the ledger: the event's held tickets must equal the tickets named in 201 answers (+ the
# warm-up hold), give or take requests whose outcome is unknown (wrk's timeouts, 504s).
#
#   cargo build --release -p boxoffice
#   scripts/wrk-reserve.sh                       # 64 connections, 10 s
#   CONNECTIONS=1000 DURATION=20 scripts/wrk-reserve.sh   # a surge
#
# Needs wrk (Debian: apt-get install wrk; installed here when root) and python3.
# Everything it starts is killed on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
SEATS=${SEATS:-199000}
THREADS=${THREADS:-2}
. "$here/wrk-nodes.sh"
wrk_need_tools
wrk_start_nodes
venue=$(wrk_post "$admin" /v1/venues "{\"name\":\"Wrk Arena\",\"city\":\"Benchville\",\"country\":\"US\",\"location\":{\"lat\":0,\"lon\":0},\"sections\":[{\"name\":\"GA\",\"kind\":\"general\",\"capacity\":$SEATS}]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
event=$(wrk_post "$admin" /v1/events "{\"name\":\"Wrk on-sale\",\"type\":\"concert\",\"venue_id\":\"$venue\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"prices\":{\"GA\":1000},\"currency\":\"USD\",\"per_user_limit\":4,\"hold_seconds\":600}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
warm=$("$BIN" token --user wrk-warm-up)
for _ in $(seq 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $warm" -H 'content-type: application/json' \
    -H 'Idempotency-Key: wrk-warm-up' -d "{\"event_id\":\"$event\",\"section\":\"GA\",\"quantity\":1}" "$base/v1/booking/reserve")
  [ "$code" = 201 ] && break; sleep 0.1
done
[ "$code" = 201 ] || { echo "the event never took a hold (last answer $code)"; exit 1; }
# Distinct users (the per-user limit of 4 never interferes): 400,000 tokens, each wrk
# process starting 130,000 apart, enough for ~130,000 requests per node.
wrk_mint_tokens 400000 "$dir/tokens"
# Connections are spread over the three nodes, as the bench spreads its clients.
per=$(( (CONNECTIONS + 2) / 3 ))
out=()
for i in 0 1 2; do
  WRK_TOKENS="$dir/tokens" WRK_EVENT="$event" WRK_OFFSET=$((i * 130000)) wrk -t1 -c$per -d${DURATION}s --timeout 10s --latency \
    -s "$here/wrk-reserve.lua" "http://127.0.0.1:${ports[$i]}" > "$dir/wrk-$i.txt" 2>&1 &
  out+=($!)
done
for p in "${out[@]}"; do wait "$p"; done
ok=0; tickets=0; timeouts=0
for i in 0 1 2; do
  echo "--- wrk against node $((i+1))"; grep -E "Requests/sec|answers|tickets in|latency p|Socket errors|Non-2xx" "$dir/wrk-$i.txt" || true
  ok=$((ok + $(grep -oP '^answers 201: \K[0-9]+' "$dir/wrk-$i.txt" || echo 0)))
  tickets=$((tickets + $(grep -oP '^tickets in 201 answers: \K[0-9]+' "$dir/wrk-$i.txt" || echo 0)))
  timeouts=$((timeouts + $(grep -oP 'timeout \K[0-9]+' "$dir/wrk-$i.txt" || echo 0)))
  timeouts=$((timeouts + $(grep -oP '^answers 504 outcome_unknown: \K[0-9]+' "$dir/wrk-$i.txt" || echo 0)))
done
sleep 2
held=$(curl -s "$base/v1/events/$event" | python3 -c 'import json,sys; print(json.load(sys.stdin)["availability"]["held"])')
held=$((held - 1))
# wrk stops with a request in flight on each connection and never reads its answer: those
# (at most one per connection) are unknown outcomes too.
unknown=$((timeouts + CONNECTIONS))
echo "=== 201 answers: $ok ($(( ok / DURATION ))/s), tickets in them: $tickets, unknown outcomes (timeouts, 504): $timeouts (+ up to $CONNECTIONS in flight when wrk stopped), event holds now: $held tickets"
if [ "$held" -lt "$tickets" ] || [ "$held" -gt $((tickets + 2 * unknown)) ]; then
  echo "LEDGER MISMATCH: held tickets must be between the 201 tickets and those plus the unknown requests' quantities"
  exit 1
fi
echo "ledger consistent"
