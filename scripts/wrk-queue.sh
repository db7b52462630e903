#!/usr/bin/env bash
# Cross-check of issue 18's waiting room with an outside load generator (wrk), next to
# `boxoffice-bench --mode queue-sale`: 3 local release nodes, one event with its queue on and
# $BUYERS admitted buyers who reserve one seat and release it, again and again (wrk, one
# connection per buyer, scripts/wrk-buyer.lua): first alone for $DURATION s, then while a
# crowd joins the queue over $CONNECTIONS connections spread over the nodes, each join a
# different user (scripts/wrk-join.lua). Prints holds/s alone and with the crowd, their
# ratio, and joins/s. wrk costs the shared cores far less than the bench's HTTP client.
#
#   cargo build --release -p boxoffice
#   scripts/wrk-queue.sh                              # 32 buyers, 512 connections, 10 s
#   BUYERS=16 CONNECTIONS=256 DURATION=20 scripts/wrk-queue.sh
#
# Needs wrk and python3; everything it starts is killed on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BUYERS=${BUYERS:-32}
CONNECTIONS=${CONNECTIONS:-512}
DURATION=${DURATION:-10}
. "$here/wrk-nodes.sh"
wrk_need_tools
wrk_start_nodes
json_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
venue=$(wrk_post "$admin" /v1/venues '{"name":"Queue Arena","city":"Benchville","country":"US","location":{"lat":0,"lon":0},"sections":[{"name":"GA","kind":"general","capacity":1000}]}' | json_id)
event=$(wrk_post "$admin" /v1/events "{\"name\":\"Queue Night\",\"type\":\"concert\",\"venue_id\":\"$venue\",\"starts_at\":\"2030-01-01T00:00:00Z\",\"prices\":{\"GA\":1000},\"per_user_limit\":2,\"queue\":{\"enabled\":true,\"max_admitted\":$BUYERS,\"admission_seconds\":3600}}" | json_id)
# Tokens: the buyers first (wrk-0 …), then the crowd (at most ~100,000 joins per node and
# wrk process, enough for 10 s at 30,000 joins/s).
crowd=300000
wrk_mint_tokens $((BUYERS + crowd)) "$dir/tokens"
# The buyers join first and wait until all are admitted.
for n in $(seq 1 "$BUYERS"); do
  tok=$(sed -n "${n}p" "$dir/tokens")
  for _ in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $tok" "$base/v1/events/$event/queue")
    [ "$code" = 200 ] && break; sleep 0.1
  done
done
last=$(sed -n "${BUYERS}p" "$dir/tokens")
for _ in $(seq 300); do
  status=$(curl -s -H "Authorization: Bearer $last" "$base/v1/events/$event/queue/me" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')
  [ "$status" = admitted ] && break; sleep 0.2
done
[ "$status" = admitted ] || { echo "the buyers were never admitted"; exit 1; }
buyers() {
  WRK_TOKENS="$dir/tokens" WRK_EVENT="$event" WRK_OFFSET=0 wrk -t"$BUYERS" -c"$BUYERS" -d"${DURATION}s" --timeout 10s \
    -s "$here/wrk-buyer.lua" "http://127.0.0.1:${ports[0]}" > "$dir/$1" 2>&1
}
holds_of() { grep -oP '^holds \K[0-9]+' "$dir/$1"; }
buyers alone.txt
per=$(( (CONNECTIONS + 2) / 3 ))
crowd_pids=()
for i in 0 1 2; do
  WRK_TOKENS="$dir/tokens" WRK_EVENT="$event" WRK_OFFSET=$((BUYERS + i * 100000)) wrk -t1 -c$per -d"${DURATION}s" --timeout 10s --latency \
    -s "$here/wrk-join.lua" "http://127.0.0.1:${ports[$i]}" > "$dir/crowd-$i.txt" 2>&1 &
  crowd_pids+=($!)
done
buyers together.txt
for p in "${crowd_pids[@]}"; do wait "$p"; done
joins=0
for i in 0 1 2; do
  joins=$((joins + $(grep -oP '^answers 200: \K[0-9]+' "$dir/crowd-$i.txt" || echo 0)))
  grep -E "^answers|latency p" "$dir/crowd-$i.txt" | sed "s/^/node $((i+1)) crowd: /"
done
alone=$(holds_of alone.txt); together=$(holds_of together.txt)
grep -h errors "$dir/alone.txt" "$dir/together.txt" | sed 's/^/buyers: /'
python3 - "$alone" "$together" "$joins" "$DURATION" <<'PY'
import sys
alone, together, joins, d = (int(x) for x in sys.argv[1:])
print(f"=== holds/s alone {alone / d:.0f}, with the crowd {together / d:.0f} (ratio {together / max(alone, 1):.2f}); joins/s {joins / d:.0f}")
PY
