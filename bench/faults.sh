#!/usr/bin/env bash
# lookout under hostile targets: 1,000 checks of which 500 point at a
# target that never answers, against the same 1,000 all healthy; then a
# soak with mixed faults (default 30 minutes) and RSS at its start and end.
#
#   bench/faults.sh              # run, print, update BENCHMARKS.md
#   bench/faults.sh --no-write   # run and print only
#
# Knobs (environment): BENCH_FAULTS_WARMUP (20 s), BENCH_FAULTS_MEASURE
# (60 s), BENCH_SOAK_MINUTES (30), BENCH_KEEP_RESULTS (20: the in-memory
# history keeps this many results per check, so it is full after a few
# minutes and the soak's RSS shows lookout's own memory, not the history
# filling up; at the default of 200 it fills for 33 minutes, ~85 bytes a
# result). The hostile targets are bench/tarpit.py
# (hang, drip, reset) on loopback; the healthy one is nginx.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=1
[[ ${1:-} == --no-write ]] && WRITE=0
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-bench}
WARMUP=${BENCH_FAULTS_WARMUP:-20}
MEASURE=${BENCH_FAULTS_MEASURE:-60}
SOAK_MIN=${BENCH_SOAK_MINUTES:-30}
KEEP=${BENCH_KEEP_RESULTS:-20}
CLK_TCK=$(getconf CLK_TCK)

source "$ROOT/bench/lib.sh"

command -v nginx >/dev/null || { log "nginx is needed (apt-get install nginx-light)"; exit 1; }
log "building lookout (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release --quiet --bin lookout
BUILT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')"
LOOKOUT=$CARGO_TARGET_DIR/release/lookout

start_nginx
tarpit() { # mode -> sets TARPIT_URL
    local port
    port=$(free_port)
    python3 "$ROOT/bench/tarpit.py" "$port" "$1" &
    PIDS+=("$!")
    TARPIT_URL=http://127.0.0.1:$port/
    sleep 0.3
}
tarpit hang; HANG=$TARPIT_URL
tarpit drip; DRIP=$TARPIT_URL
tarpit reset; RESET=$TARPIT_URL
REFUSED=http://127.0.0.1:$(free_port)/

# config FILE LINES...: writes a config; each LINE is "count group url [expect]"
config() {
    local file=$1 port=$2 i n group url expect
    shift 2
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\n\n[store]\npath = ":memory:"\nkeep_results = %s\n\n' "$port" "$KEEP"
        printf '[defaults]\ninterval = "10s"\ntimeout = "5s"\n\n'
        for line in "$@"; do
            read -r n group url expect <<<"$line"
            for ((i = 1; i <= n; i++)); do
                printf '[[checks]]\nname = "%s-%04d"\ngroup = "%s"\nurl = "%s"\n' "$group" "$i" "$group" "$url"
                [[ -n ${expect:-} ]] && printf 'expect = { status = [%s] }\n' "$expect"
                printf '\n'
            done
        done
    } >"$file"
}

# group_runs FILE GROUP -> "runs skipped" summed over a group's checks
group_runs() {
    awk -v g="group=\"$2\"" '
        /^lookout_check_runs_total\{/ && index($0, g) { r += $NF }
        /^lookout_check_skipped_runs_total\{/ && index($0, g) { s += $NF }
        END { print r + 0, s + 0 }' "$1"
}
declare -A R
measure() { # name config-lines...
    local name=$1 port cfg pid c0 c1 t0 t1
    shift
    port=$(free_port)
    cfg=$TMP/$name.toml
    config "$cfg" "$port" "$@"
    "$LOOKOUT" run --config "$cfg" 2>"$TMP/$name.log" &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/readyz"
    sleep "$WARMUP"
    curl -sf --max-time 30 -o "$TMP/$name-0.txt" "http://127.0.0.1:$port/metrics"
    c0=$(cpu_ticks "$pid"); t0=$(now)
    sleep "$MEASURE"
    c1=$(cpu_ticks "$pid"); t1=$(now)
    curl -sf --max-time 30 -o "$TMP/$name-1.txt" "http://127.0.0.1:$port/metrics"
    lag_buckets "$TMP/$name-0.txt" >"$TMP/$name-l0.txt"
    lag_buckets "$TMP/$name-1.txt" >"$TMP/$name-l1.txt"
    # The healthy checks' own lag: they are a group of their own.
    lag_buckets "$TMP/$name-0.txt" healthy >"$TMP/$name-h0.txt"
    lag_buckets "$TMP/$name-1.txt" healthy >"$TMP/$name-h1.txt"
    R[$name,cpu]=$(calc "($c1 - $c0) * 100 / $CLK_TCK / ($t1 - $t0)" 1)
    R[$name,rss]=$(calc "$(vm_kb "$pid" VmHWM) / 1024" 1)
    R[$name,p50]=$(calc "$(quantile 0.5 "$TMP/$name-l0.txt" "$TMP/$name-l1.txt") * 1000" 2)
    R[$name,p99]=$(calc "$(quantile 0.99 "$TMP/$name-l0.txt" "$TMP/$name-l1.txt") * 1000" 2)
    R[$name,hp50]=$(calc "$(quantile 0.5 "$TMP/$name-h0.txt" "$TMP/$name-h1.txt") * 1000" 2)
    R[$name,hp99]=$(calc "$(quantile 0.99 "$TMP/$name-h0.txt" "$TMP/$name-h1.txt") * 1000" 2)
    for g in healthy hung; do
        read -r r0 s0 < <(group_runs "$TMP/$name-0.txt" "$g")
        read -r r1 s1 < <(group_runs "$TMP/$name-1.txt" "$g")
        R[$name,$g,runs]=$((r1 - r0))
        R[$name,$g,skipped]=$((s1 - s0))
    done
    R[$name,wall]=$(calc "$t1 - $t0" 1)
    stop "$pid"
    log "$name: cpu=${R[$name,cpu]}% rss=${R[$name,rss]}MB lag p99=${R[$name,p99]}ms healthy lag p99=${R[$name,hp99]}ms healthy runs=${R[$name,healthy,runs]} skipped=${R[$name,healthy,skipped]}"
}

log "1,000 healthy checks"
measure all_healthy "1000 healthy $TARGET"
log "500 healthy + 500 never answering"
measure half_hung "500 healthy $TARGET" "500 hung $HANG"

# --- soak ---------------------------------------------------------------------
log "soak: ${SOAK_MIN} min of mixed faults"
port=$(free_port)
cfg=$TMP/soak.toml
config "$cfg" "$port" "400 healthy $TARGET" "100 hung $HANG" "100 drip $DRIP" "100 reset $RESET" "100 refused $REFUSED" "100 missing ${TARGET}missing 200"
"$LOOKOUT" run --config "$cfg" 2>"$TMP/soak.log" &
SPID=$!
PIDS+=("$SPID")
wait_http "http://127.0.0.1:$port/readyz"
sleep 60
rss_start=$(calc "$(vm_kb "$SPID" VmRSS) / 1024" 1)
c0=$(cpu_ticks "$SPID"); t0=$(now)
curl -sf --max-time 30 -o "$TMP/soak-0.txt" "http://127.0.0.1:$port/metrics"
samples=()
for ((m = 1; m <= SOAK_MIN; m++)); do
    sleep 60
    kill -0 "$SPID" 2>/dev/null || { log "lookout died during the soak"; exit 1; }
    samples+=("$(calc "$(vm_kb "$SPID" VmRSS) / 1024" 1)")
    # A scrape a minute, as Prometheus would (more often, in truth).
    curl -sf --max-time 30 -o /dev/null "http://127.0.0.1:$port/metrics" || log "a scrape failed at minute $m"
done
c1=$(cpu_ticks "$SPID"); t1=$(now)
curl -sf --max-time 30 -o "$TMP/soak-1.txt" "http://127.0.0.1:$port/metrics"
rss_end=$(calc "$(vm_kb "$SPID" VmRSS) / 1024" 1)
hwm=$(calc "$(vm_kb "$SPID" VmHWM) / 1024" 1)
soak_cpu=$(calc "($c1 - $c0) * 100 / $CLK_TCK / ($t1 - $t0)" 1)
read -r hr0 hs0 < <(group_runs "$TMP/soak-0.txt" healthy)
read -r hr1 hs1 < <(group_runs "$TMP/soak-1.txt" healthy)
outcomes=$(awk '/^lookout_check_runs_total\{/ { match($0, /outcome="[^"]*"/); o = substr($0, RSTART + 9, RLENGTH - 10); n[o] += $NF } END { for (o in n) printf "%s %d, ", o, n[o] }' "$TMP/soak-1.txt")
stop "$SPID"

RESULTS=$(
    cat <<MD
Measured on $(date -u +%F) by \`bench/faults.sh\` (lookout ${BUILT}, release; $(nproc) cores).

**Half the checks hung.** 1,000 checks every 10 s (timeout 5 s), once all against nginx and once with 500 of them against a target that accepts and never answers (\`bench/tarpit.py hang\`). Defaults otherwise: \`max_concurrent_probes = 256\`, \`max_concurrent_per_target = 32\`. ${WARMUP} s of warm-up, then a ${MEASURE} s window.

| figure | 1,000 healthy | 500 healthy + 500 hung |
| --- | ---: | ---: |
| CPU, % of one core | ${R[all_healthy,cpu]} | ${R[half_hung,cpu]} |
| peak RSS, MB | ${R[all_healthy,rss]} | ${R[half_hung,rss]} |
| healthy checks' runs in the window (scheduled: $(calc "500 * $MEASURE / 10" 0) for 500) | ${R[all_healthy,healthy,runs]} (all 1,000) | ${R[half_hung,healthy,runs]} |
| healthy checks' skipped ticks | ${R[all_healthy,healthy,skipped]} | ${R[half_hung,healthy,skipped]} |
| hung checks' runs / skipped ticks | – | ${R[half_hung,hung,runs]} / ${R[half_hung,hung,skipped]} |
| **healthy checks' schedule lag p50 / p99, ms** | ${R[all_healthy,hp50]} / ${R[all_healthy,hp99]} | ${R[half_hung,hp50]} / ${R[half_hung,hp99]} |
| schedule lag p50 / p99 over all runs (hung included), ms | ${R[all_healthy,p50]} / ${R[all_healthy,p99]} | ${R[half_hung,p50]} / ${R[half_hung,p99]} |

The healthy checks are a group of their own, and \`lookout_schedule_lag_seconds\` has a \`group\` label, so their lag is read apart from the hung checks', which wait for their target's 32 slots.

**Soak.** ${SOAK_MIN} minutes, 1,000 checks every 10 s: 400 healthy, 100 never answering, 100 answering one byte every 500 ms, 100 reset after the request, 100 refused (nothing listens), 100 answered 404 where 200 is expected; one \`/metrics\` scrape a minute. The history is in memory with \`keep_results = ${KEEP}\`, so it is full (${KEEP} results of each check) after $(calc "$KEEP / 6" 1) minutes; with the default of 200 it would grow for 33 minutes, by about 0.7 MB a minute.

| figure | value |
| --- | ---: |
| RSS after 1 min of warm-up, MB | ${rss_start} |
| RSS at the end, MB | ${rss_end} |
| RSS each minute, MB | ${samples[*]} |
| peak RSS (VmHWM), MB | ${hwm} |
| CPU over the soak, % of one core | ${soak_cpu} |
| healthy checks' runs / skipped ticks during the soak | $((hr1 - hr0)) / $((hs1 - hs0)) |
| runs by outcome at the end (since start) | ${outcomes%, } |
MD
)
echo "$RESULTS"
if ((WRITE)); then
    replace_section "$ROOT/BENCHMARKS.md" "bench/faults.sh" "$RESULTS"
    log "wrote $ROOT/BENCHMARKS.md"
fi
