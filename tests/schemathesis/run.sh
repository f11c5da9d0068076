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
# shellcheck source=../sessiond.sh
. "$HERE/../sessiond.sh"

cleanup() {
    local rc=$?
    stop_sessiond
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

ST_ADMIN=$("$WORK/venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')
export ST_ADMIN
start_sessiond server --admin-token="$ST_ADMIN" --credential-limit-per-minute 0 --log-level warn
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
