#!/usr/bin/env bash
# User-space instructions per echo request (valgrind --tool=callgrind), for the servers of
# tcp_echo_peers.sh: a figure that the shared, noisy VM does not move. Each server runs under
# callgrind twice, for N1 and N2 requests of 64 bytes over 50 connections (evloop's echo client,
# natively); (Ir(N2) - Ir(N1)) / (N2 - N1) cancels start-up and connection set-up. Kernel time
# (the syscalls themselves) is not counted: this is the loop's own overhead per request.
#
#   benches/tcp_echo_callgrind.sh        # ~3 min (uvloop under valgrind is slow)
#   IMPLS="evloop-protocol tokio" benches/tcp_echo_callgrind.sh   # a subset
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-/work/shared/peers}
PY=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
OUT=$ROOT/target/peers/callgrind
N1=${N1:-2000}
N2=${N2:-12000}
IMPLS=${IMPLS:-evloop-protocol evloop-streams evloop-sockets tokio uvloop-protocol uvloop-streams}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$OUT"
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p evloop --example echo >&2
cargo build --release -q --manifest-path "$PEERS/tokio-peer/Cargo.toml" \
    --target-dir "$ROOT/target/peers/tokio-peer" --bin echo_server >&2
ECHO=$TARGET/release/examples/echo
TOK=$ROOT/target/peers/tokio-peer/release/echo_server

# ir NAME N CMD... : the server's total Ir for N requests (the port is its last argument)
ir() {
    local name=$1 n=$2; shift 2
    local port=$((27000 + RANDOM % 2000)) out=$OUT/$name-$n.out
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" "$port" >/dev/null 2>"$out.log" &
    local pid=$!
    for _ in $(seq 1 600); do
        "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" \
            2>/dev/null && break
        sleep 0.2
    done
    "$ECHO" client "127.0.0.1:$port" 50 "$n" >/dev/null
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    awk '/^totals:/ {print $2; exit}' "$out"
}

per_request() {
    local name=$1; shift
    case " $IMPLS " in *" $name "*) ;; *) return 0;; esac
    local a b
    a=$(ir "$name" "$N1" "$@"); b=$(ir "$name" "$N2" "$@")
    echo "workload=tcp_echo_ir impl=$name value=$(( (b - a) / (N2 - N1) )) unit=instructions_per_request"
}

per_request evloop-protocol "$ECHO" server --protocol
per_request evloop-streams "$ECHO" server --streams
per_request evloop-sockets "$ECHO" server
per_request tokio "$TOK"
per_request uvloop-protocol "$PY" "$PEERS/python/echo_server.py" --loop uvloop --api protocol --port
per_request uvloop-streams "$PY" "$PEERS/python/echo_server.py" --loop uvloop --api streams --port
