# Sourced by the wrk scripts (wrk-reserve.sh, wrk-queue.sh): three local release nodes on
# loopback, an admin token, user tokens, and a trap that kills all of it on exit.
#
# After `wrk_start_nodes`: $dir (scratch, removed on exit), ${ports[0..5]} (HTTP 0-2, Raft
# 3-5), $base (node 1's URL), $admin (an admin token). `wrk_mint_tokens N FILE` writes N user
# tokens `wrk-0` … `wrk-<N-1>`, one per line. `wrk_post TOKEN PATH JSON` posts to node 1.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN=${BIN:-${CARGO_TARGET_DIR:-$here/../target}/release/boxoffice}
export BOXOFFICE_AUTH_SECRET=wrk-secret-0123456789abcdef0123

wrk_need_tools() {
  [ -x "$BIN" ] || { echo "no boxoffice binary at $BIN (cargo build --release -p boxoffice, or BIN=...)"; exit 2; }
  if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else echo "wrk is not installed and this is not root: skipped"; exit 0; fi
  fi
}

wrk_start_nodes() {
  dir=$(mktemp -d /tmp/boxoffice-wrk-XXXXXX)
  pids=()
  trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT INT TERM
  ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
  local peers="1=127.0.0.1:${ports[3]},2=127.0.0.1:${ports[4]},3=127.0.0.1:${ports[5]}"
  for i in 1 2 3; do
    RUST_LOG=warn NO_COLOR=1 "$BIN" serve --node-id $i --http 127.0.0.1:${ports[$((i-1))]} \
      --raft 127.0.0.1:${ports[$((i+2))]} --data-dir "$dir/node-$i" --peers "$peers" \
      --cluster-secret wrk-cluster-secret-0123456789abcdef > "$dir/node-$i.log" 2>&1 &
    pids+=($!)
    disown $!
  done
  base=http://127.0.0.1:${ports[0]}
  for i in 0 1 2; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:${ports[$i]}/healthz" && break; sleep 0.1; done
  done
  admin=$("$BIN" token --admin --user wrk-admin)
}

wrk_post() { curl -s -H "Authorization: Bearer $1" -H 'content-type: application/json' -d "$3" "$base$2"; }

wrk_mint_tokens() {
  python3 - "$2" "$BOXOFFICE_AUTH_SECRET" "$1" <<'PY'
import base64, hashlib, hmac, json, sys, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=")
out, secret, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
exp = int(time.time()) + 3600
with open(out, "w") as f:
    for i in range(n):
        body = b64(json.dumps({"sub": f"wrk-{i}", "exp": exp}).encode())
        sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
        f.write((head + b"." + body + b"." + sig).decode() + "\n")
PY
}
