#!/usr/bin/env bash
# Runs the benchmark scenarios against rpc-crypto (JSON and Protobuf, and the encrypted fan-out
# of its secure transport), NATS and Mosquitto, each server pinned to CPU 0 and the load
# generator to CPU 1, and prints a markdown table.
#
#   bench/run.sh            # every scenario, about 14 minutes on 2 cores, build included
#   QUICK=1 bench/run.sh    # shorter windows, for a smoke run
#   SCENARIOS="a" TARGETS="rpc-json rpc-protobuf" bench/run.sh   # some scenarios and targets
#
# Installs the peers from Debian's packages when they are missing (needs root), builds the
# release binaries, and writes the raw results to target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench
mkdir -p "$OUT"
RESULTS=$OUT/results.jsonl
: > "$RESULTS"

if ! command -v nats-server >/dev/null || ! command -v mosquitto >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nats-server mosquitto >/dev/null
fi
cargo build --release -q -p rpc-crypto -p rpc-crypto-bench
# 10,000 idle connections need as many descriptors in the server and in the generator.
ulimit -n "$(ulimit -Hn)"

WARMUP=1; DURATION=5; DRAIN=2
if [ -n "${QUICK:-}" ]; then WARMUP=0.5; DURATION=2; DRAIN=1; fi

RPC_URL=ws://127.0.0.1:8100/connection/websocket
NATS_URL=ws://127.0.0.1:9222
MQTT_URL=ws://127.0.0.1:8080
SERVER_PID=

# Keys of the secure transport: the server's, and one client key that the subscribers' ids
# sub0 ... sub99 share (the clients dir holds its public key under each id).
SECURE=$OUT/secure
rm -rf "$SECURE"
mkdir -p "$SECURE/clients"
"$ROOT/target/release/rpc-crypto" keygen --out "$SECURE/server" --force >/dev/null
"$ROOT/target/release/rpc-crypto" keygen --out "$SECURE/client" --force >/dev/null
for n in $(seq 0 99); do cp "$SECURE/client.pub.pem" "$SECURE/clients/sub$n.pem"; done

cat > "$OUT/rpc-crypto.toml" <<'TOML'
# rpc-crypto as benchmarked: one worker, pings off (NATS and Mosquitto ping every few minutes,
# far apart from these runs), no session or command-rate limits (one publisher connection sends
# up to 64,000 msg/s; the peers limit neither), no built-in exchange or rates, and a namespace
# anyone may publish to. Also the secure transport (/connection/secure, the [secure] table at the
# end) with the keys bench/run.sh makes in target/bench/secure, no handshake rate limits (each
# run makes 100 handshakes from one address, up to 50 at once, which the default of 4 RSA
# decryptions at once would partly refuse with 4009), and no parked sessions: a secure session would
# otherwise wait 60 s for its client after each run, still subscribed, and the next run's
# handshake with the same client id would find it unable to replay from order 0 and be refused.
listen = "127.0.0.1:8100"
workers = 1
[client]
ping_interval = "0s"
command_rate = 0
[limits]
max_sessions = 0
max_sessions_per_address = 0
max_sessions_per_user = 0
[session]
resume_grace = "0s"
# No market data of its own: the peers have none either.
[sim]
enabled = false
[rates]
source = "off"
[[namespaces]]
name = "bench"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_publish_for_client = true
allow_publish_for_anonymous = true
TOML
cat >> "$OUT/rpc-crypto.toml" <<TOML
[secure]
enabled = true
server_key_file = "$SECURE/server.key.pem"
clients_dir = "$SECURE/clients"
reload_interval = "0s"
handshakes_per_address = 0
handshakes_per_client = 0
max_concurrent_handshakes = 64
TOML

start() {
    case $1 in
        rpc-json|rpc-protobuf|rpc-secure)
            RUST_LOG=warn taskset -c 0 "$ROOT/target/release/rpc-crypto" serve --config "$OUT/rpc-crypto.toml" >"$OUT/rpc-crypto.log" 2>&1 &
            ;;
        nats)
            GOMAXPROCS=1 taskset -c 0 nats-server -c "$ROOT/bench/nats.conf" >"$OUT/nats.log" 2>&1 &
            ;;
        mqtt)
            taskset -c 0 mosquitto -c "$ROOT/bench/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    sleep 0.5
    kill -0 "$SERVER_PID"
}

stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    sleep 0.3
}
trap stop EXIT

url() {
    case $1 in rpc-*) echo $RPC_URL ;; nats) echo $NATS_URL ;; mqtt) echo $MQTT_URL ;; esac
}

# loadgen TARGET SCENARIO ARGS... : one run, its JSON line tagged and appended to the results.
# rpc-secure's subscribers use the secure transport (its URL derived from RPC_URL), its
# publisher the JSON wire.
loadgen() {
    local target=$1 scenario=$2; shift 2
    local line keys=()
    if [ "$target" = rpc-secure ]; then
        keys=(--server-public-key "$SECURE/server.pub.pem" --client-key "$SECURE/client.key.pem")
    fi
    if line=$(taskset -c 1 "$ROOT/target/release/loadgen" --target "$target" --url "$(url "$target")" \
        --server-pid "$SERVER_PID" ${keys[@]+"${keys[@]}"} "$scenario" "$@" 2>>"$OUT/loadgen.log"); then
        echo "{\"scenario\":\"$SCENARIO\",\"run\":$line}" >> "$RESULTS"
        echo "$line"
    else
        echo "{\"scenario\":\"$SCENARIO\",\"run\":{\"target\":\"$target\",\"error\":true}}" >> "$RESULTS"
        return 1
    fi
}

# sweep TARGET SIZE RATES... : rising rates until two in a row miss zero loss with p99 <= 50 ms.
sweep() {
    local target=$1 size=$2; shift 2
    local misses=0
    start "$target"
    for rate in "$@"; do
        local ok=0 line
        if line=$(loadgen "$target" fanout --subscribers 100 --rate "$rate" --size "$size" \
            --warmup $WARMUP --duration $DURATION --drain $DRAIN); then
            ok=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(int(r["lost"]==0 and r["p99_ms"]<=50))' "$line")
        fi
        if [ "$ok" = 1 ]; then misses=0; else misses=$((misses + 1)); fi
        [ $misses -ge 2 ] && break
    done
    stop
}

# wanted SCENARIO / target TARGET: whether SCENARIOS and TARGETS (default: all) name it.
wanted() { [[ " ${SCENARIOS:-a a-secure b c d e} " == *" $1 "* ]]; }
targets() {
    local t
    for t in "$@"; do [[ " ${TARGETS:-$*} " == *" $t "* ]] && echo "$t"; done
    return 0
}

RATES_64="1000 6000 12000 24000 32000 36000 40000 44000 48000 56000 64000 72000"
RATES_1K="1000 4000 8000 12000 16000 24000"
MQTT_RATES="500 1000 1500 2000 3000"
SECURE_RATES="1000 4000 8000 12000 16000 24000 32000"

if wanted a; then
    echo "== (a) 100 subscribers, 1 publisher, 64 B" >&2
    SCENARIO=a
    for t in $(targets rpc-json rpc-protobuf nats); do sweep $t 64 $RATES_64; done
    for t in $(targets mqtt); do sweep $t 64 $MQTT_RATES; done
fi

if wanted a-secure; then
    echo "== (a-secure) encrypted fan-out: 100 subscribers on /connection/secure, 64 B" >&2
    SCENARIO=a-secure
    for t in $(targets rpc-secure); do sweep $t 64 $SECURE_RATES; done
fi

if wanted b; then
    echo "== (b) 100 subscribers, 1 publisher, 1 KiB" >&2
    SCENARIO=b
    for t in $(targets rpc-json rpc-protobuf nats); do sweep $t 1024 $RATES_1K; done
    for t in $(targets mqtt); do sweep $t 1024 $MQTT_RATES; done
fi

if wanted c; then
    echo "== (c) 1,000 x 100 msg/s and 5,000 x 10 msg/s" >&2
    SCENARIO=c
    for t in $(targets rpc-json rpc-protobuf nats mqtt); do
        start $t
        loadgen $t fanout --subscribers 1000 --rate 100 --size 64 --warmup $WARMUP --duration $DURATION --drain $DRAIN >/dev/null || true
        stop
        start $t
        loadgen $t fanout --subscribers 5000 --rate 10 --size 64 --warmup $WARMUP --duration $DURATION --drain $DRAIN >/dev/null || true
        stop
    done
fi

if wanted d; then
    echo "== (d) 10,000 idle connections" >&2
    SCENARIO=d
    for t in $(targets rpc-json rpc-protobuf nats mqtt); do
        start $t
        loadgen $t idle --connections 10000 >/dev/null || true
        stop
    done
fi

if wanted e; then
    echo "== (e) connects per second" >&2
    SCENARIO=e
    for t in $(targets rpc-json rpc-protobuf nats mqtt); do
        start $t
        loadgen $t connects --sessions 5000 --concurrency 50 >/dev/null || true
        stop
    done
fi

python3 "$ROOT/bench/table.py" "$RESULTS"
