#!/usr/bin/env bash
# Tandem testnet: two nodes (gov, bank) on loopback, from a fresh clone.
#
# Builds `tandem` (release), creates both node directories with keys under testnet/run/, writes
# their configs from configs/{gov,bank}.toml with each other's certificate fingerprints, starts both
# nodes, submits configs/demo-job.toml at gov, watches it, shows the bank's view, and stops both
# nodes (also on error or Ctrl-C). Ports: TANDEM_PORT_BASE (default 7400) + 1/2 (QUIC), + 11/12 (admin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/testnet/run"
BASE="${TANDEM_PORT_BASE:-7400}"
JOB="${TANDEM_JOB:-$ROOT/configs/demo-job.toml}"
cd "$ROOT"

echo "== building tandem (release)"
cargo build --release -p node --bin tandem
BIN="$ROOT/target/release/tandem"

PIDS=()
stop_nodes() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap stop_nodes EXIT
trap 'exit 130' INT TERM

rm -rf "$RUN"
mkdir -p "$RUN"

echo "== creating node keys"
fingerprint() { grep -o 'sha256:[0-9a-f]\{64\}'; }
FP_GOV="$("$BIN" init --name gov --role gov --out "$RUN/gov" | fingerprint)"
FP_BANK="$("$BIN" init --name bank --role bank --out "$RUN/bank" | fingerprint)"
echo "gov  certificate $FP_GOV"
echo "bank certificate $FP_BANK"

# write_config TEMPLATE OUT MY_QUIC MY_ADMIN PEER_QUIC PEER_FINGERPRINT
write_config() {
    sed -e "s|^listen = \"[^\"]*\"|listen = \"127.0.0.1:$3\"|" \
        -e "s|^port = [0-9]*|port = $4|" \
        -e "s|^addr = \"[^\"]*\"|addr = \"127.0.0.1:$5\"|" \
        -e "s|^fingerprint = \"[^\"]*\"|fingerprint = \"$6\"|" \
        -e "s|^path = \"\.\./testdata/|path = \"$ROOT/testdata/|" \
        "$1" > "$2"
}
write_config configs/gov.toml "$RUN/gov/tandem.toml" $((BASE + 1)) $((BASE + 11)) $((BASE + 2)) "$FP_BANK"
write_config configs/bank.toml "$RUN/bank/tandem.toml" $((BASE + 2)) $((BASE + 12)) $((BASE + 1)) "$FP_GOV"

echo "== starting nodes (logs in testnet/run/{gov,bank}/node.log)"
for n in gov bank; do
    "$BIN" serve --config "$RUN/$n/tandem.toml" > "$RUN/$n/node.log" 2>&1 < /dev/null &
    PIDS+=("$!")
done
for n in gov bank; do
    for _ in $(seq 100); do
        "$BIN" status --config "$RUN/$n/tandem.toml" > /dev/null 2>&1 && break
        sleep 0.1
    done
    "$BIN" status --config "$RUN/$n/tandem.toml" || { echo "node $n did not start:"; cat "$RUN/$n/node.log"; exit 1; }
done

echo "== submitting $(basename "$JOB") at gov"
ID="$("$BIN" job --config "$RUN/gov/tandem.toml" submit "$JOB")"
echo "job $ID"
STATUS=0
"$BIN" job --config "$RUN/gov/tandem.toml" watch "$ID" || STATUS=$?

echo "== the bank's record of job $ID"
for _ in $(seq 50); do
    "$BIN" job --config "$RUN/bank/tandem.toml" status "$ID" > "$RUN/bank-view.json" 2>/dev/null && break
    sleep 0.1
done
"$BIN" job --config "$RUN/bank/tandem.toml" list
echo "transcripts: $RUN/gov/data/jobs/$ID/transcript.jsonl, $RUN/bank/data/jobs/$ID/transcript.jsonl"

echo "== stopping nodes"
stop_nodes
if [ "$STATUS" -eq 0 ]; then echo "testnet: job $ID succeeded"; else echo "testnet: job $ID did not succeed"; fi
exit "$STATUS"
