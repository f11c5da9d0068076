# Sourced by the scripts that drive a live `sessiond serve` (tests/clients/run.sh,
# tests/schemathesis/run.sh): start it on a free loopback port, wait for its listening
# line, stop it. Needs WORK (a scratch directory) and BIN (the binary).

SERVER_PID=""

# start_sessiond NAME ARGS...: `sessiond serve --ephemeral --listen 127.0.0.1:0 ARGS...`,
# stdout in $WORK/NAME.out and stderr in $WORK/NAME.err. Sets SERVER_PID, and BASE to the
# URL it listens on (empty if it did not say within 20 s, or not on 127.0.0.1).
start_sessiond() {
    local name=$1
    shift
    # SESSIOND_* in the caller's environment must not change the server under test.
    while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(SESSIOND_[A-Z_]*\)=.*/\1/p')
    "$BIN" serve --ephemeral --listen 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    BASE=""
    for _ in $(seq 200); do # 20 s
        BASE=$(sed -n 's|^sessiond listening on \(https\{0,1\}://127\.0\.0\.1:[0-9]*\) .*|\1|p' "$WORK/$name.out")
        [ -n "$BASE" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL server: no listening line on 127.0.0.1 within 20 s"
    sed 's/^/  server stdout: /' "$WORK/$name.out" || true
    tail -n 20 "$WORK/$name.err" | sed 's/^/  server stderr: /' || true
    return 1
}

# stop_sessiond: SIGTERM (a graceful stop), then SIGKILL after 5 s.
stop_sessiond() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
