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
source "$ROOT/testnet/lib.sh"

build_tandem
trap stop_nodes EXIT
trap 'exit 130' INT TERM

init_pair
write_pair_configs "$BASE"

echo "== starting nodes (logs in testnet/run/{gov,bank}/node.log)"
start_node gov
start_node bank

echo "== submitting $(basename "$JOB") at gov"
ID="$(tandem_at gov job submit "$JOB")"
echo "job $ID"
STATUS=0
tandem_at gov job watch "$ID" || STATUS=$?

echo "== the bank's record of job $ID"
for _ in $(seq 50); do
    tandem_at bank job status "$ID" > "$RUN/bank-view.json" 2>/dev/null && break
    sleep 0.1
done
tandem_at bank job list
echo "transcripts: $RUN/gov/data/jobs/$ID/transcript.jsonl, $RUN/bank/data/jobs/$ID/transcript.jsonl"

echo "== stopping nodes"
stop_nodes
if [ "$STATUS" -eq 0 ]; then echo "testnet: job $ID succeeded"; else echo "testnet: job $ID did not succeed"; fi
exit "$STATUS"
