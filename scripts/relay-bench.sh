#!/usr/bin/env bash
# What a request costs when the node a client asks does not host the event (issue 16, the
# peer plane): four real nodes on loopback (plain gRPC between them, no TLS), an event placed
# on three of them, and wrk against the fourth ("relayed") and against a replica ("served
# there"), reading the event page with 1, 4 and 16 connections, then GA reserves through the
# fourth, and a hold's page (a read no node keeps) relayed and served there; and the nodes' CPU
# per relayed event page at one connection.
#
#   scripts/relay-bench.sh BINARY [LABEL] [BASE_PORT]
#
# Give two binaries in turn (alternating, in one session) to compare them. Needs wrk and curl;
# bounded (about 90 s), loopback only, and it kills its nodes and removes its data on exit.
set -u
BIN=$(realpath "$1"); LABEL=${2:-$(basename "$BIN")}; PORT=${3:-18080}
command -v wrk >/dev/null || { echo "relay-bench: needs wrk (apt-get install wrk)"; exit 1; }
D=$(mktemp -d /tmp/relay-bench.XXXXXX)
SECRET=relay-bench-auth-secret-0123456789
trap 'pkill -9 -f "$D/node-" 2>/dev/null; while pgrep -f "$D/node-" >/dev/null; do sleep 0.1; done; rm -rf "$D"' EXIT
PEERS=""; for i in 1 2 3 4; do PEERS="$PEERS${PEERS:+,}$i=127.0.0.1:$((PORT+1000+i-1))"; done
for i in 1 2 3 4; do
  "$BIN" serve --node-id $i --http 127.0.0.1:$((PORT+i-1)) --raft 127.0.0.1:$((PORT+1000+i-1)) --peers "$PEERS" \
    --data-dir "$D/node-$i" --auth-secret $SECRET --cluster-secret relay-bench-cluster-secret-0123 > "$D/node-$i.log" 2>&1 & disown
done
for _ in $(seq 1 60); do
  ok=1; for n in 1 2 3 4; do curl -sf http://127.0.0.1:$((PORT+n-1))/readyz >/dev/null || ok=0; done
  [ $ok = 1 ] && break; sleep 1
done
[ $ok = 1 ] || { echo "relay-bench: the nodes did not get ready (logs in $D)"; pkill -9 -f "$D/node-"; trap - EXIT; exit 1; }
ADMIN=$("$BIN" token --auth-secret $SECRET --user admin --admin)
BUYER=$("$BIN" token --auth-secret $SECRET --user buyer)
B=http://127.0.0.1:$PORT
json() { python3 -c "import sys,json; v=json.load(sys.stdin); print($1)"; }
V=$(curl -s -XPOST $B/v1/venues -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
  -d '{"name":"Big","city":"X","country":"US","location":{"lat":1,"lon":1},"sections":[{"name":"GA","kind":"general","capacity":100000}]}' | json 'v["id"]')
# Events until one is not placed on node 4.
for i in $(seq 1 12); do
  E=$(curl -s -XPOST $B/v1/events -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    -d "{\"name\":\"Relay $i\",\"type\":\"concert\",\"venue_id\":\"$V\",\"starts_at\":\"2030-01-01T20:00:00Z\",\"prices\":{\"GA\":100},\"currency\":\"USD\",\"per_user_limit\":50,\"hold_seconds\":600}" | json 'v["id"]')
  sleep 0.5
  R=$(curl -s $B/v1/cluster -H "authorization: Bearer $ADMIN" | json "' '.join(map(str, v['placement']['$E']))")
  case " $R " in *" 4 "*) ;; *) break ;; esac
done
REP=${R%% *}
# One result line from wrk's output in $D/w.txt; non-2xx answers are named, not hidden.
result() {
  local bad; bad=$(grep "Non-2xx" "$D/w.txt" | awk '{print $NF}')
  echo "$LABEL  $1  $(grep Requests/sec "$D/w.txt" | awk '{print $2}')/s  p50 $(grep ' 50%' "$D/w.txt" | awk '{print $2}')  p99 $(grep ' 99%' "$D/w.txt" | awk '{print $2}')${bad:+  ($bad answers not 2xx)}"
}
echo "$LABEL: event $E on nodes [$R]; relayed through node 4, served on node $REP"
for c in 1 4 16; do
  for via in 4 $REP; do
    what=$([ $via = 4 ] && echo relayed || echo "served there")
    wrk -t1 -c$c -d6s --latency http://127.0.0.1:$((PORT+via-1))/v1/events/$E > "$D/w.txt"
    result "GET /v1/events/{id}  $what  c=$c"
  done
done
cat > "$D/reserve.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"event_id":"$E","section":"GA","quantity":1}'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $BUYER"
LUA
wrk -t1 -c16 -d6s --latency -s "$D/reserve.lua" http://127.0.0.1:$((PORT+3))/v1/booking/reserve > "$D/w.txt"
result "POST reserve (GA 1; past the 50 per user these are 409s, decided in the log)  relayed  c=16"
# A read nothing keeps: the reader's own hold (GET /v1/holds/{id}), every request relayed.
READER=$("$BIN" token --auth-secret $SECRET --user reader)
HOLD=$(curl -s -XPOST http://127.0.0.1:$((PORT+3))/v1/booking/reserve -H "authorization: Bearer $READER" -H 'content-type: application/json' \
  -d "{\"event_id\":\"$E\",\"section\":\"GA\",\"quantity\":1}" | json 'v["hold_id"]')
[ -n "$HOLD" ] || { echo "relay-bench: the reader's reserve failed"; exit 1; }
for c in 1 16; do
  for via in 4 $REP; do
    what=$([ $via = 4 ] && echo relayed || echo "served there")
    wrk -t1 -c$c -d6s --latency -H "authorization: Bearer $READER" http://127.0.0.1:$((PORT+via-1))/v1/holds/$HOLD > "$D/w.txt"
    result "GET /v1/holds/{id}  $what  c=$c"
  done
done
cpu() { for p in $(pgrep -f "$D/node-"); do awk '{print $14+$15}' /proc/$p/stat; done | awk '{s+=$1} END {print s}'; }
a=$(cpu); wrk -t1 -c1 -d8s http://127.0.0.1:$((PORT+3))/v1/events/$E > "$D/w.txt"; b=$(cpu)
n=$(grep "requests in" "$D/w.txt" | awk '{print $1}')
echo "$LABEL  relayed GET c=1: $n requests, the nodes' CPU $(python3 -c "print(round(($b-$a)*1e6/$(getconf CLK_TCK)/$n))") us per request"
