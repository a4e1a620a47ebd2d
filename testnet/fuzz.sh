#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time each (default 60 s), starting from
# seed corpora made from honest protocol runs. Testnet/manual only: never called from CI.
#
#   testnet/fuzz.sh [SECONDS] [TARGET...]
#
# Works on the stable toolchain: cargo-fuzz with `-s none` (no sanitizer) needs no nightly
# flags. Installs cargo-fuzz if missing. Exits non-zero if any target crashed; crashing inputs
# are in fuzz/artifacts/<target>/ (reproduce: cargo fuzz run -s none <target> <file>).
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo fuzz build -s none
cargo run --release --quiet --example seeds -- corpus

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
    if cargo fuzz run -s none "$t" -- "${flags[@]}" >"$log" 2>&1; then
        grep -E '^#[0-9]+ +DONE' "$log" | tail -1 || true
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
