#!/usr/bin/env bash
# Runs the PUBLISHED client libraries (okta, rocketchat-api, sudomimus-session; pinned in
# requirements.txt), unmodified, against a live sessiond; then the okta SDK again against a
# second one serving TLS (--tls-self-signed), with the SDK's refusal of plain http left on.
#
#   tests/clients/run.sh <path-to-sessiond-binary>
#
# Creates a venv in a temp dir (pip honours PIP_CACHE_DIR), starts
# `sessiond serve --ephemeral --listen 127.0.0.1:0 --admin-token <random>`, runs drive.py
# from a throw-away working directory and HOME (the okta SDK reads ./okta.yaml and
# ~/.okta/okta.yaml), and always stops the server. Last line: `N passed, M failed`;
# exit status 1 on any failure. Traffic goes to 127.0.0.1 only (PyPI aside).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
    echo "usage: $0 <path-to-sessiond-binary>" >&2
    exit 2
fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
PIP_TIMEOUT=${PIP_TIMEOUT:-600}      # seconds for the whole pip install
DRIVER_TIMEOUT=${DRIVER_TIMEOUT:-240} # seconds for all the checks

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sessiond-clients.XXXXXX")
# shellcheck source=../sessiond.sh
. "$HERE/../sessiond.sh"

cleanup() {
    local rc=$?
    stop_sessiond
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the clients, in a fresh venv ----------------------------------------------------
echo "== installing clients: $(grep -v '^#' "$HERE/requirements.txt" | tr '\n' ' ')"
"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
timeout "$PIP_TIMEOUT" "$PY" -m pip install --disable-pip-version-check --quiet \
    --timeout 60 -r "$HERE/requirements.txt"
"$PY" -m pip freeze --disable-pip-version-check \
    | grep -iE '^(okta|rocketchat[-_]api|sudomimus[-_]session|aiohttp|requests|httpx)==' \
    | tr '\n' ' '
echo

# ---- 2. the server ----------------------------------------------------------------------
ADMIN_TOKEN=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
if ! start_sessiond server --admin-token="$ADMIN_TOKEN"; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "== sessiond at $BASE (pid $SERVER_PID)"

# ---- 3. the checks ----------------------------------------------------------------------
mkdir -p "$WORK/cwd" "$WORK/home"
set +e
(
    cd "$WORK/cwd"
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy OKTA_CLIENT_ORGURL OKTA_CLIENT_TOKEN
    HOME="$WORK/home" NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
        OKTA_TESTING_TESTINGDISABLEHTTPSCHECK=true PYTHONUNBUFFERED=1 \
        timeout "$DRIVER_TIMEOUT" "$PY" "$HERE/drive.py" --base "$BASE" --admin-token="$ADMIN_TOKEN"
) 2>"$WORK/driver.err" | tee "$WORK/driver.out"
DRIVER_RC=${PIPESTATUS[0]}
set -e

if [ "$DRIVER_RC" -ne 0 ] && [ "$DRIVER_RC" -ne 1 ]; then
    # Killed by the timeout, or crashed before its summary: count what it printed.
    echo "FAIL driver: exited with status $DRIVER_RC (124 = timed out after ${DRIVER_TIMEOUT}s)"
    tail -n 20 "$WORK/driver.err" | sed 's/^/  driver stderr: /'
    passed=$(grep -c '^PASS ' "$WORK/driver.out" || true)
    failed=$(grep -c '^FAIL ' "$WORK/driver.out" || true)
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
fi
if [ "$DRIVER_RC" -ne 0 ]; then
    echo "== server stderr (last 30 lines):"
    tail -n 30 "$WORK/server.err" | sed 's/^/  /'
    echo "== driver stderr (last 30 lines):"
    tail -n 30 "$WORK/driver.err" | sed 's/^/  /'
fi

# ---- 4. the Okta SDK over https, with its refusal of plain http left on -----------------
# A second server with --tls-self-signed; the SDK (aiohttp) and the driver's own calls
# trust its certificate through SSL_CERT_FILE, and reach it as https://localhost.
stop_sessiond
TLS_BASE=""
if start_sessiond tls --admin-token="$ADMIN_TOKEN" --tls-self-signed; then
    TLS_BASE=${BASE/https:\/\/127.0.0.1:/https://localhost:}
fi
CERT=$(sed -n 's|^TLS certificate \(.*\) (SHA-256 .*|\1|p' "$WORK/tls.out")
TLS_RC=1
if [ -n "$TLS_BASE" ] && [ -f "$CERT" ]; then
    echo "== sessiond at $TLS_BASE (certificate $CERT)"
    set +e
    (
        cd "$WORK/cwd"
        unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy OKTA_CLIENT_ORGURL \
            OKTA_CLIENT_TOKEN OKTA_TESTING_TESTINGDISABLEHTTPSCHECK
        HOME="$WORK/home" NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
            SSL_CERT_FILE="$CERT" PYTHONUNBUFFERED=1 \
            timeout "$DRIVER_TIMEOUT" "$PY" "$HERE/drive.py" --base "$TLS_BASE" \
            --admin-token="$ADMIN_TOKEN" --tls
    ) 2>"$WORK/tls-driver.err" | tee "$WORK/tls-driver.out"
    TLS_RC=${PIPESTATUS[0]}
    set -e
    if [ "$TLS_RC" -ne 0 ]; then
        tail -n 30 "$WORK/tls-driver.err" | sed 's/^/  tls driver stderr: /'
        tail -n 30 "$WORK/tls.err" | sed 's/^/  tls server stderr: /'
    fi
else
    echo "FAIL tls server: no https listening line or certificate within 20 s"
    sed 's/^/  server stdout: /' "$WORK/tls.out" || true
fi

# The summary of both passes stays the last line.
passed=$(cat "$WORK/driver.out" "$WORK/tls-driver.out" 2>/dev/null | grep -c '^PASS ' || true)
failed=$(cat "$WORK/driver.out" "$WORK/tls-driver.out" 2>/dev/null | grep -c '^FAIL ' || true)
if [ "$TLS_RC" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$DRIVER_RC" -eq 0 ] && [ "$TLS_RC" -eq 0 ]
