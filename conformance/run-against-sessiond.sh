#!/usr/bin/env bash
# Starts the given sessiond binary on loopback with an ephemeral store and runs the
# conformance suite against it through `sessiond conformance`. Extra arguments go to the
# suite (e.g. --level documented, --format tap, --junit FILE).
# Usage: conformance/run-against-sessiond.sh target/release/sessiond [suite args...]
set -euo pipefail
bin=${1:?usage: $0 path/to/sessiond [suite args...]}
shift
token="conformance-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
log=$(mktemp)
"$bin" serve --ephemeral --listen 127.0.0.1:0 --admin-token="$token" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
base=""
for _ in $(seq 1 100); do
  base=$(sed -n 's/^sessiond listening on \(http:\/\/[^ ]*\).*/\1/p' "$log")
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "sessiond exited before listening"; exit 3; }
  sleep 0.1
done
[ -n "$base" ] || { cat "$log"; echo "sessiond did not start listening within 10 s"; exit 3; }
"$bin" conformance --target "$base" --admin-token="$token" "$@"
