#!/usr/bin/env bash
# Runs schemathesis (pinned in requirements.txt) against a live sessiond, using the
# document the server itself serves at /openapi.json.
#
#   tests/schemathesis/run.sh <path-to-sessiond-binary> [seconds]
#
# Starts `sessiond serve --ephemeral` on 127.0.0.1 with the flood guard off (schemathesis
# sends thousands of requests with one credential), provisions an application, an
# account, sessions and an Okta API token (provision.py), hands schemathesis a credential
# for each security scheme (schemathesis.toml), and runs every phase with every check for
# at most `seconds` (default 240). Any server error (5xx), any answer the document does not
# describe (status, Content-Type, headers, body schema), or any other failed check fails
# the run. Always stops the server. Traffic goes to 127.0.0.1 only (PyPI aside).
set -euo pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 <path-to-sessiond-binary> [seconds]" >&2
    exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SECONDS_BUDGET=${2:-240}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
PIP_TIMEOUT=${PIP_TIMEOUT:-600}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-schemathesis.XXXXXX")
SERVER_PID=""

cleanup() {
    local rc=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -f "$WORK/server.err" ]; then
        echo "-- last lines of the server's log"
        tail -n 30 "$WORK/server.err" || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== installing $(grep -v '^#' "$HERE/requirements.txt" | tr '\n' ' ')"
"$PYTHON" -m venv "$WORK/venv"
timeout "$PIP_TIMEOUT" "$WORK/venv/bin/python" -m pip install --disable-pip-version-check \
    --quiet --timeout 60 -r "$HERE/requirements.txt"

# SESSIOND_* in the caller's environment must not change the server under test.
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(SESSIOND_[A-Z_]*\)=.*/\1/p')
ST_ADMIN=$("$WORK/venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')
export ST_ADMIN
"$BIN" serve --ephemeral --listen 127.0.0.1:0 --admin-token="$ST_ADMIN" \
    --credential-limit-per-minute 0 --log-level warn \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
BASE=""
for _ in $(seq 200); do # 20 s
    BASE=$(sed -n 's|^sessiond listening on \(http://127\.0\.0\.1:[0-9]*\) .*|\1|p' "$WORK/server.out")
    [ -n "$BASE" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$BASE" ]; then
    echo "FAIL: the server did not say it was listening on 127.0.0.1 within 20 s"
    cat "$WORK/server.out"
    exit 1
fi
echo "== sessiond at $BASE"

eval "$("$WORK/venv/bin/python" "$HERE/provision.py" "$BASE" "$ST_ADMIN")"

echo "== schemathesis, every phase and check, for at most ${SECONDS_BUDGET} s"
cd "$WORK"
status=0
"$WORK/venv/bin/schemathesis" --config-file "$HERE/schemathesis.toml" --no-color run \
    "$BASE/openapi.json" \
    --checks all \
    --max-time "$SECONDS_BUDGET" \
    --workers 2 \
    --request-timeout 10 \
    --seed 1 || status=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL: the server is gone"
    exit 1
fi
exit "$status"
