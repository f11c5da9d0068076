#!/usr/bin/env bash
# sessiond, PostgreSQL and Redis doing the same per-app revoke-all, measured the same way, in
# one sitting: starts all three on loopback in a temporary directory, runs `sessiond bench`
# and `sessiond-peers` with the same data set and timing, and writes the reports and one
# comparison table to $PEERS_OUT (default target/peers). See benches/peers/README.md.
#
#   bash benches/peers/run.sh                 # the full method (100,000 accounts, 3 × 5 s)
#   PEERS_QUICK=1 bash benches/peers/run.sh   # a smoke run of a few seconds per system
#
# Environment: PEERS_ACCOUNTS, PEERS_APPS, PEERS_TOKENS_PER_PAIR, PEERS_CONCURRENCY (1,8,32),
# PEERS_SECONDS, PEERS_REPEAT, PEERS_SEED, PEERS_OUT, PEERS_KEEP=1 (keep the data directories),
# SESSIOND_BIN and PEERS_BIN (use these binaries instead of building).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD

if [[ -n "${PEERS_QUICK:-}" ]]; then
    ACCOUNTS=${PEERS_ACCOUNTS:-2000}
    SECONDS_PER_RUN=${PEERS_SECONDS:-1}
    REPEAT=${PEERS_REPEAT:-1}
else
    # The method's full size. sessiond seeds through its HTTP admin API (a few thousand
    # sessions/s), which dominates the run at this size: PEERS_ACCOUNTS=20000 is quicker.
    ACCOUNTS=${PEERS_ACCOUNTS:-100000}
    SECONDS_PER_RUN=${PEERS_SECONDS:-5}
    REPEAT=${PEERS_REPEAT:-3}
fi
APPS=${PEERS_APPS:-5}
PER_PAIR=${PEERS_TOKENS_PER_PAIR:-2}
CONCURRENCY=${PEERS_CONCURRENCY:-1,8,32}
SEED=${PEERS_SEED:-1}
OUT=${PEERS_OUT:-$ROOT/target/peers}
PGBIN=/usr/lib/postgresql/15/bin

say() { printf '\n== %s\n' "$*" >&2; }

# --- Servers: install what is missing ---------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[[ -x $PGBIN/postgres ]] || missing+=(postgresql-15)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi

# SESSIOND_BIN and PEERS_BIN name binaries built already (CI builds once for every step).
if [[ -n "${SESSIOND_BIN:-}" && -n "${PEERS_BIN:-}" ]]; then
    SESSIOND=$(realpath "$SESSIOND_BIN")
    PEERS=$(realpath "$PEERS_BIN")
else
    say "building"
    cargo build --release -p sessiond -p sessiond-peers
    SESSIOND=$ROOT/target/release/sessiond
    PEERS=$ROOT/target/release/sessiond-peers
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d -t sessiond-peers.XXXXXX)
chmod 755 "$WORK" # the postgres user must reach its directory inside

SESSIOND_PID=
REDIS_PID=
PG_STARTED=
if [[ $(id -u) == 0 ]]; then AS_PG=(runuser -u postgres --); else AS_PG=(); fi

cleanup() {
    local rc=$?
    set +e
    [[ -n $SESSIOND_PID ]] && kill "$SESSIOND_PID" 2>/dev/null && wait "$SESSIOND_PID" 2>/dev/null
    [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    [[ -n $PG_STARTED ]] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null
    if [[ -n "${PEERS_KEEP:-}" ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # what, command...
    local what=$1
    shift
    for _ in $(seq 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$what did not come up" >&2
    return 1
}

# --- PostgreSQL: durable commits (the defaults, spelt out) -------------------------------
say "starting PostgreSQL"
PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
chown postgres:postgres "$WORK/pg" 2>/dev/null || true
"${AS_PG[@]}" "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust --no-locale -E UTF8 \
    >"$WORK/pg/initdb.log"
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$WORK/pg \
        -c synchronous_commit=on -c fsync=on -c shared_buffers=512MB" start >/dev/null
PG_STARTED=1
"$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres peers
PG_PID=$(head -1 "$WORK/pg/data/postmaster.pid")

# --- Redis: AOF with an fsync before each acknowledgement, no RDB snapshots --------------
say "starting Redis"
REDIS_PORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
    --appendonly yes --appendfsync always --save '' --logfile "$WORK/redis/server.log" &
REDIS_PID=$!
wait_for Redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping

# --- sessiond: its default durability (sled flush + fdatasync before the answer) ----------
say "starting sessiond"
SESSIOND_PORT=$(free_port)
ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The flood guard is per credential, and the load generator reuses each app's credential.
# `--log-level warn`: no line per request, as PostgreSQL and Redis log none.
# What a run revoked is swept between runs (`--between-runs-post /sweep` below, untimed, as
# PostgreSQL is vacuumed between its runs): no retention, and no background sweep in a run.
"$SESSIOND" serve --listen "127.0.0.1:$SESSIOND_PORT" --data "$WORK/sessiond" \
    --admin-token="$ADMIN_TOKEN" --credential-limit-per-minute 0 --log-level warn \
    --tombstone-retention 0s --sweep-interval 24h 2>"$WORK/sessiond.log" &
SESSIOND_PID=$!
wait_for sessiond curl -fsS "http://127.0.0.1:$SESSIOND_PORT/healthz"

COMMON=(--accounts "$ACCOUNTS" --apps "$APPS" --concurrency "$CONCURRENCY"
    --seconds "$SECONDS_PER_RUN" --repeat "$REPEAT" --seed "$SEED" --fsync-probe-dir "$WORK")
failed=()

say "sessiond: $ACCOUNTS accounts × $APPS apps × $PER_PAIR, $REPEAT × ${SECONDS_PER_RUN} s at $CONCURRENCY"
SECONDS=0
"$SESSIOND" bench --target "http://127.0.0.1:$SESSIOND_PORT" --admin-token="$ADMIN_TOKEN" \
    --shape rownd --label "sessiond (fsync)" --sessions-per-pair "$PER_PAIR" "${COMMON[@]}" \
    --between-runs-post /sweep \
    --json "$OUT/sessiond.json" --svg "$OUT/sessiond.svg" | tee "$OUT/sessiond.md" ||
    failed+=(sessiond)
echo "sessiond took ${SECONDS} s" >&2

say "PostgreSQL"
SECONDS=0
"$PEERS" postgres --url "host=127.0.0.1 port=$PG_PORT user=postgres dbname=peers" \
    --tokens-per-pair "$PER_PAIR" --ceiling "${COMMON[@]}" \
    --json "$OUT/postgres.json" --svg "$OUT/postgres.svg" | tee "$OUT/postgres.md" ||
    failed+=(postgres)
echo "PostgreSQL took ${SECONDS} s" >&2

say "Redis"
SECONDS=0
"$PEERS" redis --url "redis://127.0.0.1:$REDIS_PORT" \
    --tokens-per-pair "$PER_PAIR" --ceiling "${COMMON[@]}" \
    --json "$OUT/redis.json" --svg "$OUT/redis.svg" | tee "$OUT/redis.md" ||
    failed+=(redis)
echo "Redis took ${SECONDS} s" >&2

# --- Space and memory after the runs ------------------------------------------------------
hwm() { awk '/^VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
pg_pss() { # the postmaster and its children: PSS shares shared_buffers out fairly
    local total=0 pid
    for pid in "$PG_PID" $(pgrep -P "$PG_PID"); do
        total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$((total / 1024)) MiB"
}
du_of() { du -sh "$1" 2>/dev/null | cut -f1; }

reports=()
for r in sessiond postgres redis; do
    [[ -f $OUT/$r.json ]] && reports+=("$OUT/$r.json")
done
{
    if ((${#reports[@]})); then
        "$PEERS" compare --json "${reports[@]}" --subject "sessiond (fsync)"
    fi
    echo "| system | data directory after the runs | memory |"
    echo "|---|---:|---|"
    echo "| sessiond | $(du_of "$WORK/sessiond") | peak RSS (VmHWM) $(hwm "$SESSIOND_PID") |"
    echo "| PostgreSQL | $(du_of "$WORK/pg/data") | PSS of all its processes at the end $(pg_pss) (shared_buffers 512MB) |"
    echo "| Redis | $(du_of "$WORK/redis") | peak RSS (VmHWM) $(hwm "$REDIS_PID") |"
    echo
    echo "Settings: $ACCOUNTS accounts × $APPS apps × $PER_PAIR tokens, concurrency $CONCURRENCY," \
        "$REPEAT × ${SECONDS_PER_RUN} s, seed $SEED; $(nproc) cores shared by servers and clients."
} >"$OUT/compare.md"

say "comparison ($OUT/compare.md)"
cat "$OUT/compare.md"
if ((${#failed[@]})); then
    echo "failed or had unexpected answers: ${failed[*]}" >&2
    exit 1
fi
