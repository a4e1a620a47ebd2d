#!/usr/bin/env bash
# Tandem testnet: two nodes (gov, bank) on loopback, from a fresh clone.
#
# Builds `tandem` (release), creates both node directories with keys under testnet/run/, writes
# their configs from configs/{gov,bank}.toml with each other's certificate fingerprints and
# transcript-signing public keys, starts both nodes, submits configs/demo-job.toml at gov, watches
# it, shows the bank's view, stops both nodes (also on error or Ctrl-C), then audits the job:
# `tandem audit verify` on both nodes' transcripts and `tandem audit compare` on the pair.
# Exits non-zero if the job or the audit fails.
# Ports: TANDEM_PORT_BASE (default 7400) + 1/2 (QUIC), + 11/12 (admin).
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
"$BIN" init --name gov --role gov --out "$RUN/gov" > "$RUN/gov-init.txt"
"$BIN" init --name bank --role bank --out "$RUN/bank" > "$RUN/bank-init.txt"
# The two lines `tandem init` prints for the peer's [peer] section.
peer_value() { sed -n "s|^$2 = \"\([^\"]*\)\"$|\1|p" "$RUN/$1-init.txt"; }
FP_GOV="$(peer_value gov fingerprint)"; KEY_GOV="$(peer_value gov signing_key)"
FP_BANK="$(peer_value bank fingerprint)"; KEY_BANK="$(peer_value bank signing_key)"
echo "gov  certificate $FP_GOV, signing key $KEY_GOV"
echo "bank certificate $FP_BANK, signing key $KEY_BANK"

# write_config TEMPLATE OUT MY_QUIC MY_ADMIN PEER_QUIC PEER_FINGERPRINT PEER_SIGNING_KEY
write_config() {
    sed -e "s|^listen = \"[^\"]*\"|listen = \"127.0.0.1:$3\"|" \
        -e "s|^port = [0-9]*|port = $4|" \
        -e "s|^addr = \"[^\"]*\"|addr = \"127.0.0.1:$5\"|" \
        -e "s|^fingerprint = \"[^\"]*\"|fingerprint = \"$6\"|" \
        -e "/^\[peer\]/,/^\[/ s|^signing_key = \"[^\"]*\"|signing_key = \"$7\"|" \
        -e "s|^path = \"\.\./testdata/|path = \"$ROOT/testdata/|" \
        "$1" > "$2"
}
write_config configs/gov.toml "$RUN/gov/tandem.toml" $((BASE + 1)) $((BASE + 11)) $((BASE + 2)) "$FP_BANK" "$KEY_BANK"
write_config configs/bank.toml "$RUN/bank/tandem.toml" $((BASE + 2)) $((BASE + 12)) $((BASE + 1)) "$FP_GOV" "$KEY_GOV"

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
ID="$("$BIN" job --config "$RUN/gov/tandem.toml" submit --operator "${USER:-testnet-demo}" "$JOB")"
echo "job $ID"
STATUS=0
"$BIN" job --config "$RUN/gov/tandem.toml" watch "$ID" || STATUS=$?

echo "== the bank's record of job $ID"
for _ in $(seq 50); do
    "$BIN" job --config "$RUN/bank/tandem.toml" status "$ID" > "$RUN/bank-view.json" 2>/dev/null && break
    sleep 0.1
done
"$BIN" job --config "$RUN/bank/tandem.toml" list

echo "== stopping nodes"
stop_nodes

echo "== auditing job $ID"
GOV_T="$RUN/gov/data/jobs/$ID/transcript.jsonl"
BANK_T="$RUN/bank/data/jobs/$ID/transcript.jsonl"
AUDIT=0
"$BIN" audit verify "$GOV_T" || AUDIT=1
"$BIN" audit verify "$BANK_T" || AUDIT=1
"$BIN" audit compare "$GOV_T" "$BANK_T" || AUDIT=1
"$BIN" audit report "$GOV_T" --html "$RUN/report.html" > "$RUN/report.txt" || AUDIT=1
echo "report: $RUN/report.txt, $RUN/report.html"

if [ "$STATUS" -eq 0 ]; then echo "testnet: job $ID succeeded"; else echo "testnet: job $ID did not succeed"; fi
if [ "$AUDIT" -eq 0 ]; then echo "testnet: both transcripts verify and agree"; else echo "testnet: AUDIT FAILED"; fi
[ "$STATUS" -eq 0 ] && [ "$AUDIT" -eq 0 ]
