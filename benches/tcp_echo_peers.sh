#!/usr/bin/env bash
# Workload 7 of the peers harness (/work/shared/peers/README.md, "TCP echo"), with evloop's
# servers beside uvloop's and tokio's, driven by the peers' shared load client, in one run:
#
#   evloop protocol  (crates/evloop/examples/echo.rs --protocol)  vs uvloop protocol (and tokio)
#   evloop streams   (echo.rs --streams)                          vs uvloop streams
#   evloop sockets   (echo.rs, a task per connection)             for reference
#
# Every server is pinned to CPU 0 and the client to CPU 1; the client opens 50 connections
# of 64-byte round trips, discards 0.5 s of warm-up and counts a 3 s window. The figures
# that matter are server CPU per request (the client is near 1 core for the fast servers,
# so requests/s is partly client-bound). RUNS passes (default 3) interleave the servers, and
# the peers' summarize.py prints the medians; the last lines are evloop/uvloop ratios.
#
#   benches/tcp_echo_peers.sh            # ~2 min for 3 passes, after the builds
#   RUNS=5 benches/tcp_echo_peers.sh
#   IMPLS="evloop-protocol tokio" benches/tcp_echo_peers.sh   # a subset (no uvloop needed)
#
# IMPLS picks among evloop-protocol uvloop-protocol tokio evloop-streams uvloop-streams
# evloop-sockets (default: all); `cargo xtask bench --table` runs the first and third.
#
# Needs Python 3 with uvloop (pip install 'uvloop==0.23.*'); peers are built into
# target/peers (the peers directory itself is read-only).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$ROOT/../../shared/peers}
[ -d "$PEERS" ] || PEERS=/work/shared/peers
RUNS=${RUNS:-3}
PY=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
IMPLS=${IMPLS:-evloop-protocol uvloop-protocol tokio evloop-streams uvloop-streams evloop-sockets}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$ROOT/target/peers
mkdir -p "$OUT"
RAW=$OUT/tcp_echo-$(date +%Y%m%d-%H%M%S).txt

wanted() { case " $IMPLS " in *" $1 "*) return 0;; *) return 1;; esac; }
case " $IMPLS " in *uvloop*) "$PY" -c 'import uvloop' 2>/dev/null || { echo "uvloop is missing: pip install 'uvloop==0.23.*'" >&2; exit 1; };; esac
echo "# building evloop's echo example and the peers' tokio server and load client" >&2
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p evloop --example echo >&2
cargo build --release -q --manifest-path "$PEERS/tokio-peer/Cargo.toml" --target-dir "$OUT/tokio-peer" \
    --bin load_client --bin echo_server >&2
TOK=$OUT/tokio-peer/release
ECHO=$TARGET/release/examples/echo

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SRV="taskset -c 0"; PIN_CLI="taskset -c 1"
else
    PIN_SRV=""; PIN_CLI=""; echo "# not pinned" >&2
fi

SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
PORT=$((26100 + RANDOM % 1000))

# pair WORKLOAD IMPL SERVER-CMD... : the port is appended as the server's last argument
pair() {
    local wl=$1 impl=$2; shift 2
    PORT=$((PORT + 1))
    $PIN_SRV "$@" "$PORT" >/dev/null &
    SERVER_PID=$!
    timeout 60 $PIN_CLI "$TOK/load_client" --port "$PORT" --impl "$impl" --workload "$wl" \
        --conns 50 --secs 3 --warmup 0.5 --server-pid "$SERVER_PID" || echo "# FAILED $impl $wl"
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

{
    echo "# date $(date -Is) cpus $(nproc) $(rustc --version)"
    echo "# python $("$PY" -c 'import sys;print(sys.version.split()[0])') impls: $IMPLS"
    for r in $(seq 1 "$RUNS"); do
        echo "# pass $r of $RUNS"
        wanted evloop-protocol && pair tcp_echo evloop "$ECHO" server --protocol
        wanted uvloop-protocol && pair tcp_echo uvloop "$PY" "$PEERS/python/echo_server.py" --loop uvloop --api protocol --port
        wanted tokio && pair tcp_echo tokio "$TOK/echo_server"
        wanted evloop-streams && pair tcp_echo_streams evloop "$ECHO" server --streams
        wanted uvloop-streams && pair tcp_echo_streams uvloop "$PY" "$PEERS/python/echo_server.py" --loop uvloop --api streams --port
        wanted evloop-sockets && pair tcp_echo_sockets evloop "$ECHO" server
        true  # a skipped last server must not end the pipeline (pipefail)
    done
} | tee "$RAW"

"$PY" "$PEERS/summarize.py" "$RAW" | tee "$RAW.summary"
"$PY" - "$RAW" <<'EOF'
import re, statistics, sys
vals = {}
for line in open(sys.argv[1]):
    m = re.match(r"^workload=(\S+) impl=(\S+) value=(\S+) unit=(\S+)", line)
    if m:
        w, i, v, _ = m.groups()
        vals.setdefault((w, i), []).append(float(v))
def med(w, i):
    vs = vals.get((w, i))
    return statistics.median(vs) if vs else float("nan")
def spread(w, i):
    vs = vals.get((w, i), [])
    return f"{min(vs):.2f}..{max(vs):.2f}" if vs else "-"
print()
for wl, label in [("tcp_echo", "protocol"), ("tcp_echo_streams", "streams")]:
    for metric, unit in [("_server_cpu_per_req", "us CPU/request"), ("", "requests/s")]:
        e, u = med(wl + metric, "evloop"), med(wl + metric, "uvloop")
        print(f"{label:8} {unit:15} evloop {e:10.2f} ({spread(wl + metric, 'evloop')})  "
              f"uvloop {u:10.2f} ({spread(wl + metric, 'uvloop')})  evloop/uvloop {e / u:.2f}")
t = med("tcp_echo_server_cpu_per_req", "tokio")
print(f"tokio    us CPU/request  {t:.2f}; evloop protocol/tokio "
      f"{med('tcp_echo_server_cpu_per_req', 'evloop') / t:.2f}; evloop sockets "
      f"{med('tcp_echo_sockets_server_cpu_per_req', 'evloop'):.2f}")
EOF
echo "# raw lines in $RAW" >&2
