#!/usr/bin/env bash
# Tandem over an emulated WAN (root or CAP_NET_ADMIN, run by hand): gov and bank each in its own
# network namespace, joined by a veth pair, with `netem rate 100mbit delay 10ms loss 1%` on both
# ends (so 100 Mbit/s each way, 20 ms round trip, 1 % loss each way). Runs the job (TANDEM_JOB,
# default the demo training configs/demo-train.toml) once without shaping and once with it, and
# reports both times. Only the two new namespaces get qdiscs; they are removed on exit, so the
# machine's own interfaces and qdiscs are never touched.
#
# Needs the kernel's sch_netem. Without it the script says so and exits 0, unless
# NETEM_FALLBACK=tbf, which shapes the rate only (tbf 100mbit: no delay, no loss).
# Env: TANDEM_NO_BUILD=1 skips the build; NETEM="rate 100mbit delay 10ms loss 1%" changes the shaping;
# CORRELATIONS=iknp|silent sets the job's params.correlations (a copy of the job file is used).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="$ROOT/testnet/run/netem"
JOB="${TANDEM_JOB:-$ROOT/configs/demo-train.toml}"
SHAPING="${NETEM:-rate 100mbit delay 10ms loss 1%}"
NS_GOV=tandem-gov
NS_BANK=tandem-bank
ADDR_GOV=10.231.0.1
ADDR_BANK=10.231.0.2
cd "$ROOT"
source "$ROOT/testnet/lib.sh"

if ! ip netns add tandem-probe 2> /dev/null; then
    echo "netem.sh: cannot create network namespaces: run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    exit 1
fi
ip netns del tandem-probe
for tool in ip tc; do
    command -v "$tool" > /dev/null || { echo "netem.sh: '$tool' (iproute2) is not installed"; exit 1; }
done

cleanup() {
    stop_nodes
    ip netns del "$NS_GOV" 2> /dev/null || true
    ip netns del "$NS_BANK" 2> /dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== network namespaces $NS_GOV ($ADDR_GOV) and $NS_BANK ($ADDR_BANK), joined by a veth pair"
cleanup
ip netns add "$NS_GOV"
ip netns add "$NS_BANK"
ip link add veth-gov netns "$NS_GOV" type veth peer name veth-bank netns "$NS_BANK"
ip -n "$NS_GOV" addr add "$ADDR_GOV/24" dev veth-gov
ip -n "$NS_BANK" addr add "$ADDR_BANK/24" dev veth-bank
for ns in "$NS_GOV" "$NS_BANK"; do ip -n "$ns" link set lo up; done
ip -n "$NS_GOV" link set veth-gov up
ip -n "$NS_BANK" link set veth-bank up

# shape ON|OFF: sets (or removes) the qdisc on both veth ends. Returns 2 if netem is missing.
QDISC=netem
shape() {
    local ns dev
    for pair in "$NS_GOV veth-gov" "$NS_BANK veth-bank"; do
        read -r ns dev <<< "$pair"
        ip netns exec "$ns" tc qdisc del dev "$dev" root 2> /dev/null || true
        [ "$1" = ON ] || continue
        if [ "$QDISC" = netem ]; then
            # shellcheck disable=SC2086 # SHAPING is a word list
            ip netns exec "$ns" tc qdisc add dev "$dev" root netem $SHAPING 2> "$RUN/tc.err" || return 2
        else
            ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate 100mbit burst 64kb latency 50ms
        fi
    done
}

mkdir -p "$RUN"
if [ -n "${CORRELATIONS:-}" ]; then
    # The job's last table must be [params] for the appended key to land there.
    [ "$(grep -E '^\[' "$JOB" | tail -1)" = "[params]" ] \
        || { echo "netem.sh: CORRELATIONS needs a job file whose last table is [params] ($JOB)"; exit 1; }
    cp "$JOB" "$RUN-job.toml"
    echo "correlations = \"$CORRELATIONS\"" >> "$RUN-job.toml"
    JOB="$RUN-job.toml"
fi
if ! shape ON; then
    echo "netem.sh: the kernel has no netem qdisc (sch_netem): $(cat "$RUN/tc.err")"
    if [ "${NETEM_FALLBACK:-}" != tbf ]; then
        echo "netem.sh: nothing to emulate; load sch_netem (modprobe sch_netem) or set NETEM_FALLBACK=tbf for a rate-only run"
        exit 0
    fi
    echo "netem.sh: NETEM_FALLBACK=tbf: shaping the rate only (100 Mbit/s, no delay, no loss)"
    QDISC=tbf
    SHAPING="rate 100mbit"
fi
shape OFF

[ "${TANDEM_NO_BUILD:-}" = 1 ] || build_tandem
init_pair
write_config "$ROOT/configs/gov.toml" "$RUN/gov/tandem.toml" "$ADDR_GOV:7401" 7411 "$ADDR_BANK:7402" "$FP_BANK" "$KEY_BANK"
write_config "$ROOT/configs/bank.toml" "$RUN/bank/tandem.toml" "$ADDR_BANK:7402" 7412 "$ADDR_GOV:7401" "$FP_GOV" "$KEY_GOV"
NODE_EXEC[gov]="ip netns exec $NS_GOV"
NODE_EXEC[bank]="ip netns exec $NS_BANK"
echo "== starting nodes in their namespaces (logs in testnet/run/netem/{gov,bank}/node.log)"
start_node gov
start_node bank

# run_job LABEL: submits the job at gov, waits for it; prints and records the wall time.
declare -A TIMES=()
run_job() {
    local id t0 t1
    id="$(tandem_at gov job submit "$JOB")"
    t0=$(date +%s.%N)
    if ! tandem_at gov job watch "$id" > "$RUN/watch-$1.log" 2>&1; then
        echo "job $id ($1) did not succeed:"
        tail -5 "$RUN/watch-$1.log"
        exit 1
    fi
    t1=$(date +%s.%N)
    TIMES[$1]="$(printf '%.2f' "$(echo "$t1 - $t0" | bc)")"
    echo "$1: job $id succeeded in ${TIMES[$1]} s"
    tandem_at gov job status "$id" > "$RUN/status-$1.json"
}

# traffic KEY LABEL: a number from the training's traffic report (train jobs only; empty otherwise).
traffic() {
    grep -o "\"$1\": [0-9.e]*" "$RUN/status-$2.json" | head -1 | awk '{print $2}'
}

echo "== $(basename "$JOB") without shaping"
run_job plain
echo "== $(basename "$JOB") with $QDISC $SHAPING on both ends"
shape ON
run_job shaped
shape OFF

echo
echo "netem: $(basename "$JOB"): ${TIMES[plain]} s over the bare veth, ${TIMES[shaped]} s with '$QDISC $SHAPING' on both ends"
ROUNDS="$(traffic rounds shaped)"
if [ -n "$ROUNDS" ]; then
    echo "training traffic: $(traffic total_bytes shaped) bytes, $ROUNDS rounds; \
predicted at 100 Mbit/s, 20 ms RTT: $(traffic predicted_seconds_100mbit_20ms shaped) s (bytes*8/1e8 + rounds*0.02)"
    if [ "$QDISC" = tbf ]; then
        echo "rate only (no netem): add the round trips the run did not wait for: ${TIMES[shaped]} + $ROUNDS × 0.02 = \
$(echo "${TIMES[shaped]} + $ROUNDS * 0.02" | bc) s expected at 20 ms RTT (loss not emulated)"
    fi
fi
