#!/usr/bin/env bash
# Tandem testnet: two nodes (gov, bank) on loopback, from a fresh clone.
#
# Builds `tandem` (release), creates both node directories with keys under testnet/run/, writes
# their configs from configs/{gov,bank}.toml with each other's certificate fingerprints and
# transcript-signing public keys, starts both nodes, then runs the demo on the bundled
# default_credit data:
#   1. train (configs/demo-train.toml, submitted at gov): PSI, then a WOE scorecard (secure
#      binning counts, logistic regression on WOE, calibration) on the common rows with a 70/30
#      split (test ids in testnet/run/test_ids.txt); prints the test metrics and mean PD beside
#      the plaintext WOE and raw-feature references of `tandem bench lr` on the same split;
#   2. score (configs/demo-score.toml, at gov): every common entity jointly; prints the first scores;
#   3. score named ids (configs/demo-score-ids.toml, at the bank): private lookup of a few ids,
#      one of them unknown; prints the bank's results; then a scoring session
#      (configs/demo-score-session.toml, at the bank): `tandem score ID --consent REF` for three
#      applicants, one round trip each, and `tandem session close`;
#   4. watchlist (configs/demo-watchlist.toml, at gov): the gov's early-warning list of common
#      entities whose PD is above the threshold; prints how many and the first ids;
#   5. checkup (configs/demo-checkup.toml, at gov): the credit check-up of one consenting entity;
#      prints its grade and points and where the gov's one-page HTML report is;
#   6. audit: `tandem audit verify` on both nodes' transcripts of every job, `tandem audit compare`
#      on each pair, and an HTML report of the training job.
# Stops both nodes at the end (also on error or Ctrl-C); exits non-zero if a job or the audit
# fails. TANDEM_JOB=FILE runs only that job file instead (submitted at gov). Prints both nodes'
# browser console addresses; TANDEM_KEEP_RUNNING=1 keeps the nodes up after the demo (Ctrl-C).
# Ports: TANDEM_PORT_BASE (default 7400) + 1/2 (QUIC), + 11/12 (admin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/testnet/run"
BASE="${TANDEM_PORT_BASE:-7400}"
JOB="${TANDEM_JOB:-}"
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

GOV_CFG="$RUN/gov/tandem.toml"
BANK_CFG="$RUN/bank/tandem.toml"
print_consoles() {
    echo "console: gov  http://127.0.0.1:$((BASE + 11))/console  (sign in with $RUN/gov/admin.token)"
    echo "         bank http://127.0.0.1:$((BASE + 12))/console  (sign in with $RUN/bank/admin.token)"
}
print_consoles

# run_job NODE FILE: submits FILE at NODE, follows it, prints the peer's record state; sets JOB_ID.
JOB_IDS=()
run_job() {
    local at="$RUN/$1/tandem.toml" peer
    if [ "$1" = gov ]; then peer="$BANK_CFG"; else peer="$GOV_CFG"; fi
    echo "== submitting $(basename "$2") at $1"
    JOB_ID="$("$BIN" job --config "$at" submit --operator "${USER:-testnet-demo}" "$2")"
    JOB_IDS+=("$JOB_ID")
    echo "job $JOB_ID"
    follow "$at" "$peer" "$JOB_ID"
}
# follow CONFIG PEER_CONFIG JOB: watches JOB to its end at CONFIG, then waits for the peer's record.
follow() {
    local at="$1" peer="$2" JOB_ID="$3"
    "$BIN" job --config "$at" watch "$JOB_ID" || { echo "testnet: job $JOB_ID did not succeed"; exit 2; }
    for _ in $(seq 50); do
        "$BIN" job --config "$peer" status "$JOB_ID" > "$RUN/peer-view-$JOB_ID.json" 2>/dev/null \
            && grep -q '"state": "succeeded"' "$RUN/peer-view-$JOB_ID.json" && break
        sleep 0.1
    done
}
# outcome_value CONFIG JOB KEY: a number from the job's outcome at that node.
outcome_value() {
    "$BIN" job --config "$1" status "$2" | grep -o "\"$3\": [-0-9.e]*" | head -1 | awk '{print $2}'
}

if [ -n "$JOB" ]; then
    run_job gov "$JOB"
    stop_nodes
    echo "testnet: job $JOB_ID succeeded"
    exit 0
fi

GOV_DATA="$ROOT/testdata/default_credit/default_credit_hetero_host.csv"
BANK_DATA="$ROOT/testdata/default_credit/default_credit_hetero_guest.csv"
EPOCHS="$(grep -o '^epochs = [0-9]*' configs/demo-train.toml | awk '{print $3}')"
BATCH="$(grep -o '^batch_size = [0-9]*' configs/demo-train.toml | awk '{print $3}')"
RATE="$(grep -o '^learning_rate = [0-9.]*' configs/demo-train.toml | awk '{print $3}')"

# 70/30 split by a fixed rule both nodes (and the reference) apply: every id on data lines 1-3 of 10.
awk -F, 'NR > 1 && (NR - 2) % 10 < 3 { print $1 }' "$BANK_DATA" > "$RUN/test_ids.txt"
# Each node reads job files inside its own data directory only: both get a copy of the list.
for n in gov bank; do mkdir -p "$RUN/$n/data" && cp "$RUN/test_ids.txt" "$RUN/$n/data/test_ids.txt"; done
sed -e "s|^test_fraction = .*|test_ids_file = \"test_ids.txt\"|" -e '/^split_seed = /d' \
    configs/demo-train.toml > "$RUN/demo-train.toml"
run_job gov "$RUN/demo-train.toml"
TRAIN_ID="$JOB_ID"
AUC="$(outcome_value "$GOV_CFG" "$TRAIN_ID" test_auc)"
KS="$(outcome_value "$GOV_CFG" "$TRAIN_ID" test_ks)"
MEAN_PD="$(outcome_value "$GOV_CFG" "$TRAIN_ID" test_mean_pd)"
DEFAULT_RATE="$(outcome_value "$GOV_CFG" "$TRAIN_ID" test_default_rate)"
echo "== plaintext reference (tandem bench lr: same data, split and algorithm, its own PSI order)"
REF="$("$BIN" bench lr --gov "$GOV_DATA" --bank "$BANK_DATA" --test-ids "$RUN/test_ids.txt" \
    --id-column id --id-kind raw --label-column y --epochs "$EPOCHS" --batch "$BATCH" --lr "$RATE" | tail -1)"
field() { echo "$REF" | grep -o "\"$1\":[-0-9.e]*" | cut -d: -f2; }
echo "test AUC of the train job (secure WOE scorecard): $AUC   test KS: $KS"
echo "mean predicted PD on the test rows: $MEAN_PD   observed default rate: $DEFAULT_RATE"
echo "tandem bench lr on the same split (its own PSI order, so other mini-batches):"
echo "  secure WOE scorecard $(field secure_auc), plaintext WOE reference $(field woe_reference_auc), plaintext raw-feature LR $(field raw_reference_auc)"

sed -e "s|^model = .*|model = \"$TRAIN_ID\"|" configs/demo-score.toml > "$RUN/demo-score.toml"
run_job gov "$RUN/demo-score.toml"
echo "first scores at the bank ($RUN/bank/data/jobs/$JOB_ID/scores.csv):"
head -6 "$RUN/bank/data/jobs/$JOB_ID/scores.csv"

{ echo "id,consent_ref"; sed -n '2,4p' "$BANK_DATA" | awk -F, '{ print $1 ",DEMO-CONSENT-" NR }'; echo "no-such-id,DEMO-CONSENT-4"; } \
    > "$RUN/bank/data/queries.csv"
sed -e "s|^model = .*|model = \"$TRAIN_ID\"|" configs/demo-score-ids.toml > "$RUN/demo-score-ids.toml"
run_job bank "$RUN/demo-score-ids.toml"
echo "named ids scored at the bank (the gov learned only how many):"
cat "$RUN/bank/data/jobs/$JOB_ID/scores.csv"

sed -e "s|^model = .*|model = \"$TRAIN_ID\"|" configs/demo-score-session.toml > "$RUN/demo-score-session.toml"
echo "== submitting demo-score-session.toml at bank (a scoring session)"
SESSION_ID="$("$BIN" job --config "$BANK_CFG" submit --operator "${USER:-testnet-demo}" "$RUN/demo-score-session.toml")"
JOB_IDS+=("$SESSION_ID")
for _ in $(seq 600); do
    "$BIN" session --config "$BANK_CFG" list 2>/dev/null | grep -q "^$SESSION_ID " && break
    sleep 0.2
done
"$BIN" session --config "$BANK_CFG" list
echo "single applicants scored in session $SESSION_ID (one round trip each; the gov learns only the count):"
for id in $(sed -n '5,7p' "$BANK_DATA" | cut -d, -f1); do
    "$BIN" score --config "$BANK_CFG" --session "$SESSION_ID" --consent "DEMO-APPLICATION-$id" "$id"
done
"$BIN" session --config "$BANK_CFG" close "$SESSION_ID"
follow "$BANK_CFG" "$GOV_CFG" "$SESSION_ID"

sed -e "s|^model = .*|model = \"$TRAIN_ID\"|" configs/demo-watchlist.toml > "$RUN/demo-watchlist.toml"
run_job gov "$RUN/demo-watchlist.toml"
echo "early-warning list at the gov ($(outcome_value "$GOV_CFG" "$JOB_ID" flagged) entities above PD $(outcome_value "$GOV_CFG" "$JOB_ID" threshold); the bank learned only the count), first ids:"
head -4 "$RUN/gov/data/jobs/$JOB_ID/watchlist.csv"

sed -e "s|^model = .*|model = \"$TRAIN_ID\"|" configs/demo-checkup.toml > "$RUN/demo-checkup.toml"
run_job gov "$RUN/demo-checkup.toml"
SUMMARY="$("$BIN" job --config "$GOV_CFG" status "$JOB_ID" | grep -o 'grade [A-Z+]* ([0-9]* points)' | head -1)"
echo "credit check-up of entity $(grep -o '^entity = "[^"]*"' configs/demo-checkup.toml | cut -d'"' -f2) at the gov: $SUMMARY; \
report $RUN/gov/data/jobs/$JOB_ID/checkup.html (the bank learned nothing of it)"
test -s "$RUN/gov/data/jobs/$JOB_ID/checkup.html"

"$BIN" job --config "$BANK_CFG" list
echo "transcripts: $RUN/{gov,bank}/data/jobs/<id>/transcript.jsonl"
if [ -n "${TANDEM_KEEP_RUNNING:-}" ]; then
    print_consoles
    echo "== nodes keep running (TANDEM_KEEP_RUNNING); Ctrl-C stops them"
    wait
fi
echo "== stopping nodes"
stop_nodes

echo "== auditing the transcripts of every job"
AUDIT=0
for id in "${JOB_IDS[@]}"; do
    GOV_T="$RUN/gov/data/jobs/$id/transcript.jsonl"
    BANK_T="$RUN/bank/data/jobs/$id/transcript.jsonl"
    "$BIN" audit verify "$GOV_T" || AUDIT=1
    "$BIN" audit verify "$BANK_T" || AUDIT=1
    "$BIN" audit compare "$GOV_T" "$BANK_T" || AUDIT=1
done
"$BIN" audit report "$RUN/bank/data/jobs/$TRAIN_ID/transcript.jsonl" --html "$RUN/report.html" > "$RUN/report.txt" || AUDIT=1
echo "training job report: $RUN/report.txt, $RUN/report.html"
if [ "$AUDIT" -ne 0 ]; then echo "testnet: AUDIT FAILED"; exit 3; fi
echo "testnet: train job $TRAIN_ID, both score jobs, the scoring session, the watchlist and the check-up succeeded; all transcripts verify and agree"
