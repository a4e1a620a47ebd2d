# Shared functions of the testnet scripts (faults.sh, netem.sh); source it after setting
#   ROOT  repository root
#   RUN   directory for node directories, configs and logs
# Node n's files live in $RUN/n/: keys from `tandem init`, tandem.toml, node.log.

BIN="$ROOT/target/release/tandem"
export USER="${USER:-testnet}"   # `tandem job submit` names the operator after $USER
declare -A NODE_PID=()
# Optional command prefix per node, e.g. NODE_EXEC[gov]="ip netns exec tandem-gov" (netem.sh).
declare -A NODE_EXEC=()

build_tandem() {
    echo "== building tandem (release)"
    (cd "$ROOT" && cargo build --release -p node --bin tandem)
}

# init_pair: fresh keys for gov and bank under $RUN; sets FP_GOV, FP_BANK (certificate
# fingerprints) and KEY_GOV, KEY_BANK (transcript signing public keys, when `init` prints them).
init_pair() {
    rm -rf "$RUN"
    mkdir -p "$RUN"
    echo "== creating node keys"
    local n
    for n in gov bank; do "$BIN" init --name "$n" --role "$n" --out "$RUN/$n" > "$RUN/$n-init.txt"; done
    FP_GOV="$(grep -o 'sha256:[0-9a-f]\{64\}' "$RUN/gov-init.txt" | head -1)"
    FP_BANK="$(grep -o 'sha256:[0-9a-f]\{64\}' "$RUN/bank-init.txt" | head -1)"
    KEY_GOV="$(sed -n 's|^signing_key = "\([^"]*\)"$|\1|p' "$RUN/gov-init.txt")"
    KEY_BANK="$(sed -n 's|^signing_key = "\([^"]*\)"$|\1|p' "$RUN/bank-init.txt")"
    echo "gov  certificate $FP_GOV"
    echo "bank certificate $FP_BANK"
}

# write_config TEMPLATE OUT MY_LISTEN MY_ADMIN_PORT PEER_ADDR PEER_FINGERPRINT [PEER_SIGNING_KEY]
# MY_LISTEN and PEER_ADDR are host:port; dataset paths become absolute.
write_config() {
    sed -e "s|^listen = \"[^\"]*\"|listen = \"$3\"|" \
        -e "s|^port = [0-9]*|port = $4|" \
        -e "s|^addr = \"[^\"]*\"|addr = \"$5\"|" \
        -e "s|^fingerprint = \"[^\"]*\"|fingerprint = \"$6\"|" \
        -e "/^\[peer\]/,/^\[/ s|^signing_key = \"[^\"]*\"|signing_key = \"${7:-}\"|" \
        -e "s|^path = \"\.\./testdata/|path = \"$ROOT/testdata/|" \
        "$1" > "$2"
}

# write_pair_configs BASE: both configs on 127.0.0.1, QUIC ports BASE+1/+2, admin BASE+11/+12.
write_pair_configs() {
    local base="$1"
    write_config "$ROOT/configs/gov.toml" "$RUN/gov/tandem.toml" "127.0.0.1:$((base + 1))" $((base + 11)) "127.0.0.1:$((base + 2))" "$FP_BANK" "$KEY_BANK"
    write_config "$ROOT/configs/bank.toml" "$RUN/bank/tandem.toml" "127.0.0.1:$((base + 2))" $((base + 12)) "127.0.0.1:$((base + 1))" "$FP_GOV" "$KEY_GOV"
}

# start_node NAME: starts `tandem serve` for node NAME in the background (appending to its
# node.log), records its pid in NODE_PID[NAME] and waits until its admin API answers (at most
# START_WAIT_TENTHS tenths of a second, default 100).
start_node() {
    local n="$1"
    # shellcheck disable=SC2086 # NODE_EXEC is a word list
    ${NODE_EXEC[$n]:-} "$BIN" serve --config "$RUN/$n/tandem.toml" >> "$RUN/$n/node.log" 2>&1 < /dev/null &
    NODE_PID[$n]=$!
    for _ in $(seq "${START_WAIT_TENTHS:-100}"); do
        tandem_at "$n" status > /dev/null 2>&1 && break
        kill -0 "${NODE_PID[$n]}" 2>/dev/null || break
        sleep 0.1
    done
    tandem_at "$n" status || { echo "node $n did not start:"; tail -20 "$RUN/$n/node.log"; return 1; }
}

# stop_nodes: SIGTERM to every node still running, then wait for them.
stop_nodes() {
    local n
    for n in "${!NODE_PID[@]}"; do kill -TERM "${NODE_PID[$n]}" 2>/dev/null || true; done
    for n in "${!NODE_PID[@]}"; do wait "${NODE_PID[$n]}" 2>/dev/null || true; done
    NODE_PID=()
}

# tandem_at NAME ARGS...: runs the CLI against node NAME.
tandem_at() {
    local n="$1"
    shift
    # shellcheck disable=SC2086
    ${NODE_EXEC[$n]:-} "$BIN" "$@" --config "$RUN/$n/tandem.toml"
}
