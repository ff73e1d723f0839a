#!/usr/bin/env bash
# lookout benchmark: CPU per probe for each probe kind (http, tcp, dns,
# grpc, icmp), lookout's /probe against Debian's blackbox_exporter, both
# driven the same way: GET /probe?target=…&module=… at a fixed rate for a
# fixed time (bench/kinds_load.rs) against loopback targets
# (bench/kinds_targets.rs). CPU is utime+stime of the exporter's process
# from /proc/PID/stat across the window, divided by the probes completed;
# the driver's and the targets' CPU are not counted.
#
#   bench/kinds.sh              # run, print, update BENCHMARKS.md
#   bench/kinds.sh --no-write   # run and print only
#
# Knobs (environment): BENCH_KINDS_RATE (1000 probes/s), BENCH_KINDS_SECONDS
# (10), BENCH_KINDS_WARMUP (2 s before each window), BENCH_KINDS_RUNS (3),
# BENCH_KINDS_CONCURRENCY (64 in flight). Everything listens on 127.0.0.1;
# every process started is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=1
[[ ${1:-} == --no-write ]] && WRITE=0
RATE=${BENCH_KINDS_RATE:-1000}
SECONDS_=${BENCH_KINDS_SECONDS:-10}
WARMUP=${BENCH_KINDS_WARMUP:-2}
RUNS=${BENCH_KINDS_RUNS:-3}
CONC=${BENCH_KINDS_CONCURRENCY:-64}
BLACKBOX=/usr/bin/prometheus-blackbox-exporter
KINDS=(http tcp dns grpc icmp)

source "$ROOT/bench/lib.sh"
CLK_TCK=$(getconf CLK_TCK)

[[ -x $BLACKBOX ]] || { log "$BLACKBOX is missing (apt-get install prometheus-blackbox-exporter)"; exit 1; }

log "building lookout and the bench examples (release)"
cargo build --release --quiet --bin lookout --example bench-kinds-targets --example bench-kinds-load
BIN=$ROOT/target/release
BUILT="lookout $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')"

# --- targets ----------------------------------------------------------------
"$BIN/examples/bench-kinds-targets" >"$TMP/targets.json" 2>"$TMP/targets.log" &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do [[ -s $TMP/targets.json ]] && break; sleep 0.1; done
[[ -s $TMP/targets.json ]] || { log "the targets did not start"; cat "$TMP/targets.log" >&2; exit 1; }
port_of() { jq -r ".$1" "$TMP/targets.json"; }
declare -A TARGET MODULE
TARGET[http]="http://127.0.0.1:$(port_of http)/"
TARGET[tcp]="127.0.0.1:$(port_of tcp)"
TARGET[dns]="127.0.0.1:$(port_of dns)"
TARGET[grpc]="127.0.0.1:$(port_of grpc)"
TARGET[icmp]="127.0.0.1"
MODULE=([http]=http_2xx [tcp]=tcp_connect [dns]=dns_a [grpc]=grpc_health [icmp]=icmp)
log "targets: $(cat "$TMP/targets.json")"

# --- the same modules, for each exporter -------------------------------------
cat >"$TMP/lookout.toml" <<EOF
[server]
listen = "127.0.0.1:$(free_port)"

[store]
path = ":memory:"

[scheduler]
max_concurrent_probes = 256
max_concurrent_per_target = 256

[modules.http_2xx]
prober = "http"
timeout = "5s"

[modules.tcp_connect]
prober = "tcp"
timeout = "5s"

[modules.dns_a]
prober = "dns"
timeout = "5s"
dns = { name = "bench.example", type = "A" }

[modules.grpc_health]
prober = "grpc"
timeout = "5s"

[modules.icmp]
prober = "icmp"
timeout = "5s"
EOF
cat >"$TMP/blackbox.yml" <<'EOF'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: bench.example
      query_type: A
      transport_protocol: udp
  grpc_health:
    prober: grpc
    timeout: 5s
    grpc:
      preferred_ip_protocol: ip4
      tls: false
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
EOF

LOOKOUT_ADDR=$(sed -n 's/^listen = "\(.*\)"/\1/p' "$TMP/lookout.toml")
"$BIN/lookout" run --config "$TMP/lookout.toml" >"$TMP/lookout.log" 2>&1 &
LOOKOUT_PID=$!
PIDS+=($LOOKOUT_PID)
BLACKBOX_ADDR=127.0.0.1:$(free_port)
"$BLACKBOX" --config.file="$TMP/blackbox.yml" --web.listen-address="$BLACKBOX_ADDR" >"$TMP/blackbox.log" 2>&1 &
BLACKBOX_PID=$!
PIDS+=($BLACKBOX_PID)
wait_http "http://$LOOKOUT_ADDR/healthz" || { cat "$TMP/lookout.log" >&2; exit 1; }
wait_http "http://$BLACKBOX_ADDR/-/healthy" || { cat "$TMP/blackbox.log" >&2; exit 1; }
declare -A PID_OF=([lookout]=$LOOKOUT_PID [blackbox]=$BLACKBOX_PID)
declare -A ADDR_OF=([lookout]=$LOOKOUT_ADDR [blackbox]=$BLACKBOX_ADDR)

# One probe of each kind on each side first: a kind that cannot run on one
# side is reported n/a with what it said, and not loaded.
declare -A NA
for kind in "${KINDS[@]}"; do
    for ex in lookout blackbox; do
        url="http://${ADDR_OF[$ex]}/probe?target=${TARGET[$kind]}&module=${MODULE[$kind]}"
        body=$(curl -s --max-time 10 -w '\n%{http_code}' "$url" || true)
        code=${body##*$'\n'}
        if [[ $code != 200 ]] || ! grep -qx 'probe_success 1' <<<"$body"; then
            NA[$kind,$ex]="HTTP $code: $(grep -v '^#' <<<"${body%$'\n'*}" | grep -E 'probe_success|fail|error|refused|unknown' | head -2 | tr '\n' ' ')"
            log "$kind on $ex does not succeed: ${NA[$kind,$ex]}"
        fi
    done
done

load() { # exporter kind seconds -> JSON line
    "$BIN/examples/bench-kinds-load" --url "http://${ADDR_OF[$1]}/probe?target=${TARGET[$2]}&module=${MODULE[$2]}" \
        --rate "$RATE" --seconds "$3" --concurrency "$CONC"
}

# --- the runs: run × kind × exporter, the exporters alternating -------------
declare -A US FAIL RATES
for ((run = 1; run <= RUNS; run++)); do
    for kind in "${KINDS[@]}"; do
        for ex in lookout blackbox; do
            [[ -n ${NA[$kind,$ex]:-} ]] && continue
            load "$ex" "$kind" "$WARMUP" >/dev/null
            pid=${PID_OF[$ex]}
            t0=$(cpu_ticks "$pid")
            out=$(load "$ex" "$kind" "$SECONDS_")
            t1=$(cpu_ticks "$pid")
            completed=$(jq .completed <<<"$out")
            fails=$(jq '.non_200 + .not_success + .errors' <<<"$out")
            us=$(calc "($t1 - $t0) * 1000000 / $CLK_TCK / ($completed > 0 ? $completed : 1)" 1)
            US[$kind,$ex]+="$us "
            FAIL[$kind,$ex]=$((${FAIL[$kind,$ex]:-0} + fails))
            RATES[$kind,$ex]+="$(jq .rate <<<"$out") "
            log "run $run $kind $ex: $us µs/probe, $out"
        done
    done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
TABLE="| kind | target | lookout CPU µs/probe | blackbox_exporter CPU µs/probe | ratio lookout / blackbox | lookout runs (µs) | blackbox runs (µs) | failed probes, lookout / blackbox | probes/s achieved (median), lookout / blackbox |
| --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: |"
NOTES=""
for kind in "${KINDS[@]}"; do
    row="| $kind | \`$(sed -E 's/:[0-9]+/:PORT/' <<<"${TARGET[$kind]}")\` |"
    declare -A M=()
    for ex in lookout blackbox; do
        if [[ -n ${NA[$kind,$ex]:-} ]]; then
            M[$ex]=n/a
            NOTES+="- $kind on $ex: n/a (${NA[$kind,$ex]% })."$'\n'
        else
            M[$ex]=$(calc "$(med "${US[$kind,$ex]}")" 1)
        fi
    done
    ratio=n/a
    [[ ${M[lookout]} != n/a && ${M[blackbox]} != n/a ]] && ratio=$(calc "${M[lookout]} / ${M[blackbox]}" 2)
    runs_l=${US[$kind,lookout]:-} runs_b=${US[$kind,blackbox]:-}
    rate_l=n/a rate_b=n/a
    [[ -n ${RATES[$kind,lookout]:-} ]] && rate_l=$(calc "$(med "${RATES[$kind,lookout]}")" 1)
    [[ -n ${RATES[$kind,blackbox]:-} ]] && rate_b=$(calc "$(med "${RATES[$kind,blackbox]}")" 1)
    row+=" **${M[lookout]}** | **${M[blackbox]}** | **$ratio** | ${runs_l% } | ${runs_b% } | ${FAIL[$kind,lookout]:-n/a} / ${FAIL[$kind,blackbox]:-n/a} | $rate_l / $rate_b |"
    TABLE+=$'\n'"$row"
done

RESULTS=$(
    cat <<MD
Measured on $(date -u +%F) by \`bash bench/kinds.sh\` (${BUILT}, release; $(nproc) cores, shared, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/ [0-9]*-Core Processor//'); $("$BLACKBOX" --version 2>&1 | head -1 | sed 's/ (branch.*//')).

Method: each exporter gets \`GET /probe?target=…&module=…\` at ${RATE}/s (at most ${CONC} in flight, keep-alive) from \`bench/kinds_load.rs\`: ${WARMUP} s of warm-up, then a ${SECONDS_} s window; CPU is the difference of utime+stime in \`/proc/PID/stat\` of the exporter's process across the window divided by the probes completed in it (the driver's and the targets' CPU are not counted). ${RUNS} runs, the kinds and the two exporters alternating; the table gives the median and each run. Targets (\`bench/kinds_targets.rs\`, 127.0.0.1): axum answering 200 "ok", a TCP acceptor that closes at once, hickory-server answering \`bench.example. A\` over UDP, tonic-health with "" SERVING; ICMP echoes 127.0.0.1 (both run as root). The modules are the same on both sides, 5 s timeout, no other expectations: lookout's as \`[modules.NAME]\` (with \`max_concurrent_probes\` and \`max_concurrent_per_target\` at 256, \`[store] path = ":memory:"\`, no checks), blackbox_exporter's in a blackbox.yml (\`preferred_ip_protocol: ip4\`, DNS over UDP, gRPC without TLS). A failed probe is a non-200 answer, a body without \`probe_success 1\`, or no answer.

${TABLE}
${NOTES:+
$NOTES}
MD
)
echo "$RESULTS"
if ((WRITE)); then
    replace_section "$ROOT/BENCHMARKS.md" "bench/kinds.sh" "$RESULTS"
    log "wrote $ROOT/BENCHMARKS.md"
fi
