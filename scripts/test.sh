#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, lints, then every test of the
# workspace — unit, property, scenario, openraft's storage suite, and the tests that start
# real `boxoffice` processes and talk HTTP to them (loopback only); then the API fuzzing run
# (scripts/fuzz-api.sh: OpenAPI 3.1 validation and schemathesis against one node).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The fault campaign (jepsen-tests) compiles a small LD_PRELOAD shim with a C compiler.
if ! command -v "${CC:-cc}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing gcc for the fault campaign's connect() shim"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null
  else
    echo "== no C compiler and not root: the fault campaign (jepsen-tests/tests/campaign.rs) is skipped"
    export BOXOFFICE_SKIP_FAULT_CAMPAIGN="no C compiler for the connect() shim, and not root to install one"
  fi
fi

# The fault campaign runs its nodes in network namespaces with iptables partitions, skews
# clocks with libfaketime, and cuts power on lazy disks (FUSE: fuse3's fusermount3), when
# root: install what is missing (else it falls back to loopback proxies and skips the clock
# and power nemeses and the disk tests, and says so).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=""
  command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
  command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
  command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
  command -v fusermount3 >/dev/null 2>&1 || missing="$missing fuse3"
  if [ -n "$missing" ]; then
    echo "== installing$missing for the fault campaign (namespaces, partitions, clock skew, lazy disks)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
  fi
else
  echo "== not root: the fault campaign runs on loopback proxies and skips the clock nemesis"
fi

# The web pages' tests (node/tests/browser.rs) drive Debian's chromium, headless, over the
# DevTools protocol: install it when root (else those tests print why and pass; under CI=true
# as root a missing chromium fails them).
if [ -x /usr/bin/chromium ]; then
  :
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium for the browser tests (node/tests/browser.rs)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
else
  echo "== no /usr/bin/chromium and not root to install it: the browser tests (node/tests/browser.rs) are skipped"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads="${BOXOFFICE_TEST_THREADS:-2}"
echo "== API fuzzing (scripts/fuzz-api.sh: OpenAPI 3.1 validation, schemathesis as admin and as user)"
scripts/fuzz-api.sh
