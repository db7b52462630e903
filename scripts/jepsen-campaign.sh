#!/usr/bin/env bash
# The long fault campaign (issue 6): every workload under every nemesis (partition, kill,
# pause, clock, all) on 3 and on 5 nodes — 50 runs — TIME seconds each, PARALLEL runs at a
# time (each run has its own network namespaces and ports). Writes OUT/campaign.tsv (one
# line per run) and keeps every run directory (history, logs, results, timeline.png) under
# OUT/. Resumable: a run whose directory already has a summary.txt is not run again.
#
#   scripts/jepsen-campaign.sh [OUT] [TIME] [PARALLEL]
#
# Needs root for the namespace mode and the clock nemesis (it says so per run otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice-target}"
OUT="${1:-${TMPDIR:-/tmp}/boxoffice-campaign-$(date +%Y%m%d-%H%M%S)}"
TIME="${2:-300}"
PARALLEL="${3:-3}"
mkdir -p "$OUT"
cargo build --release -p boxoffice -p jepsen-tests --bins
BIN="$CARGO_TARGET_DIR/release"

runs=()
seed=1000
for wl in contention flash-sale idempotent expiry-edge queue; do
  for nem in partition kill pause clock all; do
    seed=$((seed + 1)); runs+=("3 $wl $nem $seed")
  done
done
for wl in contention flash-sale idempotent expiry-edge queue; do
  seed=$((seed + 1)); runs+=("5 $wl all $seed")
done
for nem in partition kill pause clock; do
  seed=$((seed + 1)); runs+=("5 contention $nem $seed")
done
for wl in flash-sale idempotent expiry-edge queue; do
  for nem in partition kill pause clock; do
    seed=$((seed + 1)); runs+=("5 $wl $nem $seed")
  done
done

one() {
  local nodes=$1 wl=$2 nem=$3 seed=$4
  local name="n${nodes}-${wl}-${nem}-s${seed}"
  if [ -f "$OUT/$name/summary.txt" ]; then
    echo "done before: $name"
    return 0
  fi
  rm -rf "${OUT:?}/$name"
  local start end rc
  start=$(date +%s)
  rc=0
  "$BIN/jepsen" --binary "$BIN/boxoffice" --nodes "$nodes" --workload "$wl" --nemesis "$nem" \
    --time "$TIME" --seed "$seed" --quiet --out "$OUT/$name" >"$OUT/$name.out" 2>&1 || rc=$?
  end=$(date +%s)
  local verdict
  verdict=$(grep -m1 '^result:' "$OUT/$name/summary.txt" 2>/dev/null | awk '{print $2}' || true)
  local ops
  ops=$(grep -m1 '^ops (ok/fail/info)' "$OUT/$name/summary.txt" 2>/dev/null | sed 's/^ops (ok\/fail\/info): //' || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%ss\t%s\n' "$nodes" "$wl" "$nem" "$seed" "${verdict:-HARNESS-FAILED}" "$rc" \
    "$((end - start))" "$ops" >>"$OUT/campaign.tsv"
  echo "done: $name -> ${verdict:-harness failed (exit $rc)}"
}
export -f one
export OUT TIME BIN
[ -f "$OUT/campaign.tsv" ] ||
  printf 'nodes\tworkload\tnemesis\tseed\tverdict\texit\ttook\tops (ok/fail/info)\n' >"$OUT/campaign.tsv"
printf '%s\n' "${runs[@]}" | xargs -P "$PARALLEL" -L 1 bash -c 'one $0 $1 $2 $3'
echo "campaign: $OUT/campaign.tsv"
column -t -s $'\t' "$OUT/campaign.tsv"
