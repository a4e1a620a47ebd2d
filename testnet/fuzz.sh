#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each (default 60 s), starting from
# seed corpora made from honest protocol runs. Testnet/manual only: never called from CI.
#
#   testnet/fuzz.sh [SECONDS] [TARGET...]
#
# Works on the stable toolchain: cargo-fuzz with `-s none` (no sanitizer) needs no nightly
# flags. FUZZ_SANITIZER=address builds with ASan instead (needs -Zsanitizer, so the script sets
# RUSTC_BOOTSTRAP=1; about 15x slower, separate target dir). Installs cargo-fuzz if missing.
# Known crashing inputs in fuzz/regressions/<target>/ are copied into the corpus first, so a
# regression shows at once. Exits non-zero if any target crashed; crashing inputs are in
# fuzz/artifacts/<target>/ (reproduce: cargo fuzz run -s none <target> <file>).
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

sanitizer="${FUZZ_SANITIZER:-none}"
build=(-s "$sanitizer")
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
    build+=(--target-dir "target/$sanitizer")
fi

cargo fuzz build "${build[@]}"
cargo run --release --quiet --example seeds -- corpus
for d in regressions/*/; do
    [ -d "$d" ] && mkdir -p "corpus/$(basename "$d")" && cp "$d"* "corpus/$(basename "$d")/"
done

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# -malloc_limit_mb: any single allocation above 64 MiB is reported as a crash (bounded
# allocation); -rss_limit_mb caps the whole process; -timeout flags one input taking > 10 s.
flags=(-max_total_time="$seconds" -max_len=262144 -malloc_limit_mb=64 -rss_limit_mb=2048 -timeout=10)

failed=()
for t in "${targets[@]}"; do
    log="$root/fuzz/artifacts/$t.log"
    mkdir -p "$root/fuzz/artifacts"
    echo "== $t (${seconds}s)"
    if cargo fuzz run "${build[@]}" "$t" -- "${flags[@]}" >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed 's/^/   /' || true
    else
        echo "   CRASH: see $log and fuzz/artifacts/$t/"
        grep -E 'panicked at|ERROR: libFuzzer' "$log" | head -3 | sed 's/^/   /'
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]}"
    exit 1
fi
echo "all ${#targets[@]} targets ran ${seconds}s each without a crash"
