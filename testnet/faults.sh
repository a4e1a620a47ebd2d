#!/usr/bin/env bash
# Tandem fault drill (run by hand, not by CI): stop one node in the middle of a job, by kill -9
# (crash) or by SIGTERM (clean stop by its operator).
#
# For each scenario: start gov and bank (release binary, testnet layout of run.sh, under
# testnet/run/faults/), submit a long job at gov, wait until the victim runs the job's main phase,
# signal the victim, and check that
#   1. the surviving node marks the job failed within its timeouts, naming the lost peer;
#   2. the survivor's transcript ends with a failed outcome (signed transcripts; skipped with a
#      note when this build writes the plain frame log);
#   3. no result file (intersection.csv, model.json, scores.csv) exists in either job directory;
#   4. after a restart the victim lists the job as failed: "interrupted by node restart" after
#      kill -9; after SIGTERM the reason it recorded itself, "node shutting down; ...", which
#      also ends its transcript;
#   5. the same job submitted again completes.
# Scenarios: kill -9 gov / bank, mid-PSI and (when the train phase exists) mid-training, and a
# SIGTERM of each, on testdata/synthetic_30k. A build without protocol phases prints SKIP and exits 0.
# Prints one PASS/FAIL line per scenario; exits 1 if any failed.
# Env: TANDEM_PORT_BASE (default 7500), TANDEM_NO_BUILD=1 to skip the build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/testnet/run/faults"
BASE="${TANDEM_PORT_BASE:-7500}"
IDLE=5       # timeouts.idle_secs: how long a silent (killed) peer goes unnoticed
READ=60      # timeouts.read_secs
cd "$ROOT"
source "$ROOT/testnet/lib.sh"

if [ ! -d "$ROOT/node/src/jobs/phases" ]; then
    echo "SKIP  no protocol phase in this build (node/src/jobs/phases): no job runs long enough to be killed mid-run; run again once the phases are merged"
    exit 0
fi

[ "${TANDEM_NO_BUILD:-}" = 1 ] || build_tandem
trap stop_nodes EXIT
trap 'exit 130' INT TERM

init_pair
write_pair_configs "$BASE"

GOV_CSV="$ROOT/testdata/synthetic_30k/gov.csv"
BANK_CSV="$ROOT/testdata/synthetic_30k/bank.csv"

# Short timeouts so a killed peer is noticed quickly; synthetic datasets allowed by policy.
for n in gov bank; do
    sed -i -e "s/^connect_secs = .*/connect_secs = 5/" -e "s/^read_secs = .*/read_secs = $READ/" \
        -e "s/^idle_secs = .*/idle_secs = $IDLE/" -e "s/^keepalive_secs = .*/keepalive_secs = 1/" \
        -e "s/^min_intersection = .*/min_intersection = 100/" "$RUN/$n/tandem.toml"
done
cat >> "$RUN/gov/tandem.toml" <<EOF

[datasets.gov_synth]
path = "$GOV_CSV"
id_column = "uscc"
id_kind = "uscc"

[policy.datasets.gov_synth]
columns = ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9"]
EOF
cat >> "$RUN/bank/tandem.toml" <<EOF

[datasets.bank_synth]
path = "$BANK_CSV"
id_column = "uscc"
id_kind = "uscc"
label = "default_12m"

[policy.datasets.bank_synth]
columns = ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10", "b11", "b12", "default_12m"]
EOF
# The aligned ids are revealed to both so that PSI writes intersection.csv (checked below).
for n in gov bank; do
    grep -q '^reveals = .*"intersection_ids"' "$RUN/$n/tandem.toml" || sed -i 's/^reveals = \[/reveals = ["intersection_ids", /' "$RUN/$n/tandem.toml"
done

sides='
[gov]
dataset = "gov_synth"
columns = ["g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9"]

[bank]
dataset = "bank_synth"
columns = ["b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "b10", "b11", "b12"]'
printf 'kind = "psi"\nreveal = ["intersection_ids"]\nmin_intersection = 1000\n%s\n' "$sides" > "$RUN/psi-job.toml"
printf 'kind = "train"\nreveal = ["intersection_ids", "model_to_owners", "metrics"]\nmin_intersection = 1000\n%s\nlabel = "default_12m"\n\n[params]\ntest_fraction = 0.2\nepochs = 5\n# the per-batch protocol (clipped sigmoid) keeps training busy for tens of seconds, so the kill lands mid-phase\nsigmoid = "clipped_linear"\n' \
    "$sides" > "$RUN/train-job.toml"

# job_field NODE ID EXPR: a field of the node's job record (jq expression), empty if unknown.
job_field() {
    tandem_at "$1" job status "$2" 2> /dev/null | jq -r "$3" 2> /dev/null || true
}

other() { if [ "$1" = gov ]; then echo bank; else echo gov; fi; }

RESULTS=()
FAILED=0

# scenario SIGNAL VICTIM JOB_FILE PHASE MIN_PROGRESS [DELAY]: sends SIGNAL (KILL or TERM) to
# VICTIM DELAY seconds (default 0) after its step PHASE runs and has reported at least
# MIN_PROGRESS (0..1), i.e. in the middle of the phase's protocol.
scenario() {
    local signal="$1" victim="$2" job="$3" phase="$4" min="$5" delay="${6:-0}" survivor problems="" id state error t0 t1 waited
    survivor="$(other "$victim")"
    local name="kill -$signal $victim mid-$phase"
    echo
    echo "== scenario: $name"
    for n in gov bank; do
        [ -n "${NODE_PID[$n]:-}" ] && kill -0 "${NODE_PID[$n]}" 2> /dev/null || start_node "$n" > /dev/null
    done
    id="$(tandem_at gov job submit "$job")"
    echo "job $id submitted at gov; waiting until $victim is in phase '$phase' (progress >= $min)"
    for _ in $(seq 1200); do
        state="$(job_field "$victim" "$id" ".steps[] | select(.name == \"$phase\") | if .state == \"running\" and .progress >= $min then \"running\" else \"not yet (\\(.state))\" end")"
        # Both nodes must know the job (the peer learns of it when the proposal arrives).
        [ "$state" = running ] && [ -n "$(job_field "$survivor" "$id" .state)" ] && break
        [ "$(job_field gov "$id" .state)" = succeeded ] && break
        sleep 0.05
    done
    if [ "$state" != running ]; then
        RESULTS+=("FAIL  $name: the job never ran phase '$phase' at $victim (state '$state'); nothing was killed")
        FAILED=1
        return
    fi
    sleep "$delay"
    echo "$(job_field "$victim" "$id" ".steps[] | select(.name == \"$phase\") | \"$victim at \\(.name): \\(.progress * 100 | floor)% \\(.message)\"")"
    kill "-$signal" "${NODE_PID[$victim]}"
    wait "${NODE_PID[$victim]}" 2> /dev/null || true
    unset "NODE_PID[$victim]"
    t0=$(date +%s.%N)
    echo "stopped $victim (kill -$signal); waiting for $survivor to give up"
    for _ in $(seq $(((IDLE + READ + 30) * 10))); do
        state="$(job_field "$survivor" "$id" .state)"
        case "$state" in failed | succeeded | cancelled) break ;; esac
        sleep 0.1
    done
    t1=$(date +%s.%N)
    waited="$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")"
    error="$(job_field "$survivor" "$id" .error)"
    echo "$survivor: $state after ${waited} s: $error"
    [ "$state" = failed ] || problems+="; $survivor's job is '$state', not failed"
    # "... (peer 'gov')" when the connection is lost, "peer aborted: node 'gov': ..." when told.
    case "$error" in *"peer '$victim'"* | *"peer aborted: node '$victim'"*) ;; *) problems+="; $survivor's error does not name peer '$victim'" ;; esac
    case "$error" in "phase '$phase'"*) ;; *) problems+="; the job did not fail in phase '$phase' (killed too late?)" ;; esac
    if [ "$(echo "$waited > $IDLE + 5" | bc)" = 1 ] && [ "$(echo "$waited > $READ" | bc)" = 1 ]; then
        problems+="; $survivor took ${waited} s (timeouts: idle $IDLE s, read $READ s)"
    fi

    # The survivor's transcript must end with a failed outcome (signed transcript format).
    local dir="$RUN/$survivor/data/jobs/$id" last
    last="$(ls "$dir"/transcript*.jsonl 2> /dev/null | head -1)"
    if [ -z "$last" ]; then
        problems+="; no transcript in $dir"
    elif grep -q '"type"' "$last"; then
        case "$(tail -n 1 "$last")" in
            *'"type":"outcome"'*'"failed"'*) echo "$survivor transcript ends: $(tail -n 1 "$last" | jq -c .outcome)" ;;
            *) problems+="; $survivor's transcript does not end with a failed outcome" ;;
        esac
    else
        echo "note: $survivor's transcript is the plain frame log (no outcome record in this build)"
    fi

    # After kill -9 the victim's transcript has no outcome (an auditor sees it incomplete); after
    # SIGTERM it ends with the victim's own failed outcome.
    local vt="$RUN/$victim/data/jobs/$id/transcript.jsonl" expected="interrupted by node restart"
    [ -f "$vt" ] && echo "$victim transcript: $(wc -l < "$vt") records, last: $(tail -n 1 "$vt" | jq -c '.outcome // .type // .kind' 2> /dev/null)"
    if [ "$signal" = TERM ]; then
        expected="node shutting down; resubmit the job once both nodes run"
        [ "$(tail -n 1 "$vt" | jq -r '.outcome.reason // empty' 2> /dev/null)" = "$expected" ] ||
            problems+="; $victim's transcript does not end with the outcome '$expected'"
    fi

    # Result files appear only on success.
    local leftovers
    leftovers="$(find "$RUN/gov/data/jobs/$id" "$RUN/bank/data/jobs/$id" \( -name intersection.csv -o -name model.json -o -name scores.csv \) 2> /dev/null | sed "s|$RUN/||" | tr '\n' ' ')"
    [ -z "$leftovers" ] || problems+="; result files of the failed job exist: $leftovers"

    # Restart the victim: the interrupted job is listed as failed.
    start_node "$victim" > /dev/null
    state="$(job_field "$victim" "$id" .state)"
    error="$(job_field "$victim" "$id" .error)"
    echo "$victim after restart: $state: $error"
    [ "$state" = failed ] && [ "$error" = "$expected" ] ||
        problems+="; restarted $victim lists the job as '$state' ($error), not failed ($expected)"

    # The same job again completes.
    local again
    again="$(tandem_at gov job submit "$job")"
    if tandem_at gov job watch "$again" > "$RUN/watch-$again.log" 2>&1; then
        echo "resubmitted as $again: succeeded"
    else
        problems+="; the resubmitted job $again did not succeed: $(job_field gov "$again" .error)"
    fi

    if [ -z "$problems" ]; then
        RESULTS+=("PASS  $name: $survivor failed the job after ${waited} s naming '$victim'; restart and resubmit OK")
    else
        RESULTS+=("FAIL  $name${problems}")
        FAILED=1
    fi
}

# Phase progress reports are throttled (a short step may never show one): kill a fixed time
# into the phase; the survivor's error must then name that phase.
scenario KILL gov "$RUN/psi-job.toml" psi 0 1
scenario KILL bank "$RUN/psi-job.toml" psi 0 1
if [ -f "$ROOT/node/src/jobs/phases/train.rs" ]; then
    scenario KILL gov "$RUN/train-job.toml" train 0 3
    scenario KILL bank "$RUN/train-job.toml" train 0 3
    scenario TERM gov "$RUN/train-job.toml" train 0 3
fi
scenario TERM bank "$RUN/psi-job.toml" psi 0 1
stop_nodes

echo
echo "== fault drill summary (logs: testnet/run/faults/{gov,bank}/node.log)"
printf '%s\n' "${RESULTS[@]}"
exit "$FAILED"
