#!/usr/bin/env bash
# CI's fuzz step (see README.md): builds every cargo-fuzz target on stable (`-s none`), then
# runs each for a short, bounded time starting from its checked-in inputs in
# regressions/<target>/. Fails when cargo-fuzz cannot be installed, a target does not
# build, a target has no regressions/ directory, or a run crashes (the end of the
# fuzzer's log is printed, with the crash input's path under artifacts/<target>/).
#
#   bash fuzz/ci.sh [SECONDS_PER_TARGET]    # default 15
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-15}"
cargo_fuzz_version=0.13.2

if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    echo "installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

# Every file in fuzz_targets/ must be a target in Cargo.toml, and every target must have
# its regressions directory (tests/fuzz_regressions.rs replays it with `cargo test`).
listed=$(cargo fuzz list | sort)
files=$(for f in fuzz_targets/*.rs; do basename "$f" .rs; done | sort)
if [ -z "$listed" ] || [ "$listed" != "$files" ]; then
    echo "fuzz targets in Cargo.toml: [$listed]; in fuzz_targets/: [$files]" >&2
    exit 1
fi
for t in $listed; do
    [ -d "regressions/$t" ] || { echo "no fuzz/regressions/$t directory" >&2; exit 1; }
done

# `--dev` (no optimisation; debug assertions and overflow checks as in the default build):
# a cold build of every target takes about half the CPU time of the optimised one (4 against
# 8 minutes measured on 2 cores), which matters more for a 15-second smoke run than the
# fuzzer's speed. Long runs use the default, optimised build (README.md).
cargo fuzz build -s none --dev

# Scratch space: each run's new inputs (libFuzzer writes only into the first corpus
# directory, so regressions/ is only read) and the fixtures' temporary stores.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $listed; do
    mkdir "$work/corpus-$t"
    if ! TMPDIR="$work" cargo fuzz run -s none --dev "$t" "$work/corpus-$t" "regressions/$t" -- \
        -max_total_time="$secs" -timeout=60 -print_final_stats=1 >"$work/$t.log" 2>&1; then
        grep -m1 -A2 "panicked at" "$work/$t.log" || true
        tail -n 40 "$work/$t.log"
        echo "fuzz target $t failed (input under fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    echo "$t: $(grep -E '^Done [0-9]+ runs' "$work/$t.log" || echo 'no Done line')"
done
