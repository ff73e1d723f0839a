#!/usr/bin/env bash
# lookout benchmark: CPU per probe, peak RSS, schedule lag and /metrics render
# time for 1k and 10k checks against a loopback nginx, and the CPU per probe of
# Debian's prometheus-blackbox-exporter doing the same probes, in one run.
#
#   bench/run.sh              # run everything, print a table, update BENCHMARKS.md
#   bench/run.sh --no-write   # run everything, print only
#
# Knobs (environment): BENCH_SIZES ("1000 10000"), BENCH_WARMUP (15 s),
# BENCH_MEASURE (60 s), BENCH_BB_COUNT (20000), BENCH_BB_RATE (1000 probes/s),
# BENCH_RENDERS (20), BENCH_SCRAPED (40 s window with a /metrics scrape every
# BENCH_SCRAPE_EVERY = 10 s), BENCH_FLOWS (1000 four-step flows a minute; 0 skips).
# Builds go to $CARGO_TARGET_DIR (default target-bench/).
#
# All traffic goes to 127.0.0.1. Every loop is bounded in count and time, and
# every process started here is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=1
[[ ${1:-} == --no-write ]] && WRITE=0

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-bench}
SIZES=${BENCH_SIZES:-"1000 10000"}
WARMUP=${BENCH_WARMUP:-15}
MEASURE=${BENCH_MEASURE:-60}
BB_COUNT=${BENCH_BB_COUNT:-20000}
BB_RATE=${BENCH_BB_RATE:-1000}
RENDERS=${BENCH_RENDERS:-20}
SCRAPED=${BENCH_SCRAPED:-40}
SCRAPE_EVERY=${BENCH_SCRAPE_EVERY:-10}
FLOWS=${BENCH_FLOWS:-1000}
INTERVAL_S=10
CLK_TCK=$(getconf CLK_TCK)

source "$ROOT/bench/lib.sh"

# --- tools -----------------------------------------------------------------
need_pkgs=()
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
command -v prometheus-blackbox-exporter >/dev/null || need_pkgs+=(prometheus-blackbox-exporter)
command -v curl >/dev/null || need_pkgs+=(curl)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    fi
fi

log "building lookout and the load driver (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release --quiet --bin lookout --example bench-drive
# What was built: the work tree as it was at build time.
BUILT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')"
LOOKOUT=$CARGO_TARGET_DIR/release/lookout
DRIVE=$CARGO_TARGET_DIR/release/examples/bench-drive

nginx_ticks() { # master and workers
    local t=0 p
    for p in "$NGINX_PID" $(pgrep -P "$NGINX_PID" || true); do
        t=$((t + $(cpu_ticks "$p")))
    done
    echo "$t"
}

# --- the target: nginx on loopback -----------------------------------------
start_nginx

# --- metrics helpers -----------------------------------------------------------
# summary FILE: the figures we need from one /metrics scrape.
summary() {
    awk '
        /^lookout_check_runs_total\{/ {
            runs += $NF
            if ($0 !~ /outcome="success"/) fail += $NF
        }
        /^lookout_check_skipped_runs_total\{/ { skipped += $NF }
        END { print "runs", runs + 0; print "fail", fail + 0; print "skipped", skipped + 0 }
    ' "$1"
    lag_buckets "$1"
}
field() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
# share_le BOUND BEFORE AFTER: fraction of runs in the window with lag <= BOUND.
share_le() {
    awk -v b="$1" '
        FNR == NR { if ($1 == "bucket") before[$2] = $3; next }
        $1 == "bucket" { d = $3 - before[$2]; if ($2 == b) x = d; if ($2 == "+Inf") t = d }
        END { if (t > 0) printf "%.5f\n", x / t; else print "nan" }
    ' "$2" "$3"
}

# --- lookout runs ------------------------------------------------------------
declare -A R # results, keyed "figure,size"
for N in $SIZES; do
    PORT=$(free_port)
    CFG=$TMP/lookout-$N.toml
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\n\n' "$PORT"
        printf '[scheduler]\nmax_concurrent_probes = 256\nshutdown_grace = "2s"\n\n'
        printf '[defaults]\ninterval = "%ss"\ntimeout = "5s"\n\n' "$INTERVAL_S"
        for ((i = 1; i <= N; i++)); do
            printf '[[checks]]\nname = "c%05d"\ngroup = "g%02d"\nurl = "%s"\n\n' "$i" $((i % 10)) "$TARGET"
        done
    } >"$CFG"
    log "lookout: $N checks every ${INTERVAL_S}s; warm-up ${WARMUP}s, measuring ${MEASURE}s"
    "$LOOKOUT" run --config "$CFG" 2>"$TMP/lookout-$N.log" &
    LPID=$!
    PIDS+=("$LPID")
    METRICS=http://127.0.0.1:$PORT/metrics
    wait_http "http://127.0.0.1:$PORT/readyz"
    sleep "$WARMUP"

    # Scrape, then read CPU; at the end read CPU, then scrape: no render falls
    # inside the CPU window, and the run counts bracket it to within a render.
    curl -sf --max-time 30 -o "$TMP/m0-$N.txt" "$METRICS"
    load=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(cpu_ticks "$LPID"); t0=$(now); n0=$(nginx_ticks); b0=$(sys_busy); st0=$(sys_steal)
    sleep "$MEASURE"
    c1=$(cpu_ticks "$LPID"); t1=$(now); n1=$(nginx_ticks); b1=$(sys_busy); st1=$(sys_steal)
    curl -sf --max-time 30 -o "$TMP/m1-$N.txt" "$METRICS"
    hwm_measure=$(vm_kb "$LPID" VmHWM)

    summary "$TMP/m0-$N.txt" >"$TMP/s0-$N.txt"
    summary "$TMP/m1-$N.txt" >"$TMP/s1-$N.txt"
    runs=$(($(field "$TMP/s1-$N.txt" runs) - $(field "$TMP/s0-$N.txt" runs)))
    fails=$(($(field "$TMP/s1-$N.txt" fail) - $(field "$TMP/s0-$N.txt" fail)))
    skipped=$(($(field "$TMP/s1-$N.txt" skipped) - $(field "$TMP/s0-$N.txt" skipped)))
    wall=$(calc "$t1 - $t0" 2)
    cpu_us=$(calc "($c1 - $c0) * 1000000 / $CLK_TCK" 0)
    R[runs,$N]=$runs
    R[fails,$N]=$fails
    R[skipped,$N]=$skipped
    R[wall,$N]=$wall
    R[rate,$N]=$(calc "$runs / $wall" 1)
    R[expected_rate,$N]=$(calc "$N / $INTERVAL_S" 1)
    R[cpu_pct,$N]=$(calc "$cpu_us / 10000 / $wall" 1)
    R[cpu_per_probe,$N]=$(calc "$cpu_us / ($runs > 0 ? $runs : 1)" 1)
    R[lag_p50,$N]=$(calc "$(quantile 0.5 "$TMP/s0-$N.txt" "$TMP/s1-$N.txt") * 1000" 2)
    R[lag_p99,$N]=$(calc "$(quantile 0.99 "$TMP/s0-$N.txt" "$TMP/s1-$N.txt") * 1000" 2)
    R[lag_le20,$N]=$(calc "$(share_le 0.02 "$TMP/s0-$N.txt" "$TMP/s1-$N.txt") * 100" 2)
    R[nginx_per_req,$N]=$(calc "($n1 - $n0) * 1000000 / $CLK_TCK / ($runs > 0 ? $runs : 1)" 1)
    R[other_pct,$N]=$(calc "(($b1 - $b0) - ($c1 - $c0) - ($n1 - $n0)) * 100 / $CLK_TCK / $wall" 1)
    R[load,$N]=$load
    R[steal_pct,$N]=$(calc "($st1 - $st0) * 100 / $CLK_TCK / $wall" 1)

    # /metrics render time, while the checks keep running.
    : >"$TMP/render-$N.txt"
    for ((i = 0; i < RENDERS; i++)); do
        curl -sf --max-time 30 -o /dev/null -w '%{time_total} %{size_download}\n' "$METRICS" >>"$TMP/render-$N.txt"
    done
    R[render_med,$N]=$(calc "$(awk '{print $1}' "$TMP/render-$N.txt" | median) * 1000" 1)
    R[render_max,$N]=$(calc "$(awk '{print $1}' "$TMP/render-$N.txt" | sort -g | tail -1) * 1000" 1)
    R[render_kb,$N]=$(calc "$(head -1 "$TMP/render-$N.txt" | awk '{print $2}') / 1024" 0)

    # A window like production, with a /metrics scrape every SCRAPE_EVERY s.
    curl -sf --max-time 30 -o "$TMP/m2-$N.txt" "$METRICS"
    c2=$(cpu_ticks "$LPID")
    for ((i = 0; i < SCRAPED / SCRAPE_EVERY; i++)); do
        sleep "$SCRAPE_EVERY"
        curl -sf --max-time 30 -o "$TMP/m3-$N.txt" "$METRICS"
    done
    c3=$(cpu_ticks "$LPID")
    summary "$TMP/m2-$N.txt" >"$TMP/s2-$N.txt"
    summary "$TMP/m3-$N.txt" >"$TMP/s3-$N.txt"
    sruns=$(($(field "$TMP/s3-$N.txt" runs) - $(field "$TMP/s2-$N.txt" runs)))
    R[s_cpu_per_probe,$N]=$(calc "($c3 - $c2) * 1000000 / $CLK_TCK / ($sruns > 0 ? $sruns : 1)" 1)
    R[s_lag_p50,$N]=$(calc "$(quantile 0.5 "$TMP/s2-$N.txt" "$TMP/s3-$N.txt") * 1000" 2)
    R[s_lag_p99,$N]=$(calc "$(quantile 0.99 "$TMP/s2-$N.txt" "$TMP/s3-$N.txt") * 1000" 2)
    R[s_lag_le20,$N]=$(calc "$(share_le 0.02 "$TMP/s2-$N.txt" "$TMP/s3-$N.txt") * 100" 2)
    R[s_skipped,$N]=$(($(field "$TMP/s3-$N.txt" skipped) - $(field "$TMP/s2-$N.txt" skipped)))

    hwm=$(vm_kb "$LPID" VmHWM)
    R[rss_measure,$N]=$(calc "$hwm_measure / 1024" 1)
    R[rss_peak,$N]=$(calc "$hwm / 1024" 1)
    stop "$LPID"
    log "lookout $N: runs=$runs fails=$fails skipped=$skipped cpu/probe=${R[cpu_per_probe,$N]}us lag p50=${R[lag_p50,$N]}ms p99=${R[lag_p99,$N]}ms render=${R[render_med,$N]}ms rss=${R[rss_peak,$N]}MB"
done

# --- flows: FLOWS four-step flows a minute --------------------------------------
# summary_flows FILE: flow runs, failed flow runs, and the lag buckets.
summary_flows() {
    awk '
        /^lookout_flow_runs_total\{/ {
            runs += $NF
            if ($0 !~ /outcome="success"/) fail += $NF
        }
        /^lookout_flow_skipped_runs_total\{/ { skipped += $NF }
        END { print "runs", runs + 0; print "fail", fail + 0; print "skipped", skipped + 0 }
    ' "$1"
    lag_buckets "$1"
}
if ((FLOWS > 0)); then
    PORT=$(free_port)
    CFG=$TMP/lookout-flows.toml
    ITEMS=http://127.0.0.1:$NGINX_PORT/items
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\n\n' "$PORT"
        printf '[scheduler]\nmax_concurrent_probes = 256\nshutdown_grace = "2s"\n\n'
        printf '[defaults]\ninterval = "60s"\ntimeout = "5s"\n\n'
        for ((i = 1; i <= FLOWS; i++)); do
            printf '[[flows]]\nname = "f%05d"\ngroup = "g%02d"\n' "$i" $((i % 10))
            printf '[[flows.steps]]\nname = "create"\nmethod = "POST"\nurl = "%s"\njson = { name = "bench-{{ run_id }}" }\nexpect = { status = [201] }\ncapture = { id = "/id" }\n' "$ITEMS"
            printf '[[flows.steps]]\nname = "read"\nurl = "%s/{{ id }}"\nexpect = { json = [{ pointer = "/id", exists = true }] }\n' "$ITEMS"
            printf '[[flows.steps]]\nname = "update"\nmethod = "PUT"\nurl = "%s/{{ id }}"\njson = { id = "{{ id }}", at = "{{ now_ms }}" }\n' "$ITEMS"
            printf '[[flows.steps]]\nname = "read-again"\nurl = "%s/{{ id }}"\nexpect = { json = [{ pointer = "/ok", equals = true }] }\n' "$ITEMS"
            printf '[[flows.cleanup]]\nname = "delete"\nmethod = "DELETE"\nurl = "%s/{{ id }}"\n\n' "$ITEMS"
        done
    } >"$CFG"
    log "lookout: $FLOWS flows every 60s (4 steps + 1 cleanup); warm-up ${WARMUP}s, measuring 60s"
    "$LOOKOUT" run --config "$CFG" 2>"$TMP/lookout-flows.log" &
    LPID=$!
    PIDS+=("$LPID")
    METRICS=http://127.0.0.1:$PORT/metrics
    wait_http "http://127.0.0.1:$PORT/readyz"
    sleep "$WARMUP"
    curl -sf --max-time 30 -o "$TMP/f0.txt" "$METRICS"
    c0=$(cpu_ticks "$LPID"); t0=$(now); b0=$(sys_busy); n0=$(nginx_ticks); st0=$(sys_steal)
    sleep 60
    c1=$(cpu_ticks "$LPID"); t1=$(now); b1=$(sys_busy); n1=$(nginx_ticks); st1=$(sys_steal)
    curl -sf --max-time 30 -o "$TMP/f1.txt" "$METRICS"
    summary_flows "$TMP/f0.txt" >"$TMP/fs0.txt"
    summary_flows "$TMP/f1.txt" >"$TMP/fs1.txt"
    fruns=$(($(field "$TMP/fs1.txt" runs) - $(field "$TMP/fs0.txt" runs)))
    fwall=$(calc "$t1 - $t0" 2)
    fcpu_us=$(calc "($c1 - $c0) * 1000000 / $CLK_TCK" 0)
    R[f_runs]=$fruns
    R[f_fails]=$(($(field "$TMP/fs1.txt" fail) - $(field "$TMP/fs0.txt" fail)))
    R[f_skipped]=$(($(field "$TMP/fs1.txt" skipped) - $(field "$TMP/fs0.txt" skipped)))
    R[f_rate]=$(calc "$fruns * 60 / $fwall" 0)
    R[f_cpu_pct]=$(calc "$fcpu_us / 10000 / $fwall" 1)
    R[f_cpu_per_run]=$(calc "$fcpu_us / ($fruns > 0 ? $fruns : 1)" 0)
    R[f_cpu_per_req]=$(calc "$fcpu_us / ($fruns > 0 ? $fruns * 5 : 1)" 1)
    R[f_lag_p99]=$(calc "$(quantile 0.99 "$TMP/fs0.txt" "$TMP/fs1.txt") * 1000" 2)
    R[f_other_pct]=$(calc "(($b1 - $b0) - ($c1 - $c0) - ($n1 - $n0)) * 100 / $CLK_TCK / $fwall" 1)
    R[f_steal_pct]=$(calc "($st1 - $st0) * 100 / $CLK_TCK / $fwall" 1)
    R[f_rss]=$(calc "$(vm_kb "$LPID" VmHWM) / 1024" 1)
    R[f_render]=$(calc "$(curl -sf --max-time 30 -o /dev/null -w '%{time_total}' "$METRICS") * 1000" 1)
    stop "$LPID"
    log "lookout flows: runs=$fruns fails=${R[f_fails]} cpu/run=${R[f_cpu_per_run]}us rss=${R[f_rss]}MB"
fi

# --- blackbox_exporter doing the same probes ------------------------------------
BB_PORT=$(free_port)
cat >"$TMP/bb.yml" <<EOF
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
EOF
prometheus-blackbox-exporter --config.file="$TMP/bb.yml" --web.listen-address="127.0.0.1:$BB_PORT" \
    --log.level=warn 2>"$TMP/bb.log" &
BB_PID=$!
PIDS+=("$BB_PID")
wait_http "http://127.0.0.1:$BB_PORT/-/healthy"
BB_URL="http://127.0.0.1:$BB_PORT/probe?module=http_2xx&target=http%3A%2F%2F127.0.0.1%3A$NGINX_PORT%2F"
log "blackbox_exporter: warm-up, then $BB_COUNT probes at $BB_RATE/s"
"$DRIVE" "$BB_URL" 500 200 64 "$CLK_TCK" --expect "probe_success 1" >/dev/null
c0=$(cpu_ticks "$BB_PID"); t0=$(now); n0=$(nginx_ticks); b0=$(sys_busy); st0=$(sys_steal)
bb_out=$("$DRIVE" "$BB_URL" "$BB_COUNT" "$BB_RATE" 64 "$CLK_TCK" --expect "probe_success 1")
c1=$(cpu_ticks "$BB_PID"); t1=$(now); n1=$(nginx_ticks); b1=$(sys_busy); st1=$(sys_steal)
log "blackbox driver: $bb_out"
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }
bb_sent=$(kv "$bb_out" sent)
R[bb_sent]=$bb_sent
R[bb_ok]=$(kv "$bb_out" ok)
R[bb_rate]=$(kv "$bb_out" rate)
R[bb_cpu_per_probe]=$(calc "($c1 - $c0) * 1000000 / $CLK_TCK / $bb_sent" 1)
R[bb_other_pct]=$(calc "(($b1 - $b0) - ($c1 - $c0) - ($n1 - $n0) - $(kv "$bb_out" driver_cpu_us) * $CLK_TCK / 1000000) * 100 / $CLK_TCK / ($t1 - $t0)" 1)
R[bb_steal_pct]=$(calc "($st1 - $st0) * 100 / $CLK_TCK / ($t1 - $t0)" 1)
R[bb_rss]=$(calc "$(vm_kb "$BB_PID" VmHWM) / 1024" 1)
stop "$BB_PID"

# --- reference: a bare fresh-connection GET from a tokio/hyper client --------
log "reference: $BB_COUNT fresh-connection GETs straight to nginx from the driver"
floor_out=$("$DRIVE" "$TARGET" "$BB_COUNT" "$BB_RATE" 64 "$CLK_TCK" --fresh --expect ok)
log "floor driver: $floor_out"
R[floor_cpu_per_req]=$(kv "$floor_out" driver_cpu_us_per_req)
R[floor_ok]=$(kv "$floor_out" ok)
R[floor_sent]=$(kv "$floor_out" sent)
log "reference: $BB_COUNT fresh-connection GETs back to back (one at a time, unpaced)"
seq_out=$("$DRIVE" "$TARGET" "$BB_COUNT" 0 1 "$CLK_TCK" --fresh --expect ok)
log "sequential driver: $seq_out"
R[seq_cpu_per_req]=$(kv "$seq_out" driver_cpu_us_per_req)
R[seq_ok]=$(kv "$seq_out" ok)
R[seq_rate]=$(kv "$seq_out" rate)
RAW_COUNT=$((BB_COUNT / 4))
log "reference: $RAW_COUNT fresh-connection GETs from a plain blocking socket (python3)"
raw_out=$(python3 "$ROOT/bench/floor.py" "$NGINX_PORT" "$RAW_COUNT")
log "raw socket: $raw_out"
R[raw_ok]=$(kv "$raw_out" ok)
R[raw_user]=$(kv "$raw_out" user_us_per_req)
R[raw_sys]=$(kv "$raw_out" sys_us_per_req)
R[raw_cpu]=$(kv "$raw_out" cpu_us_per_req)

# --- report --------------------------------------------------------------------
LAST=${SIZES##* }
FIRST=${SIZES%% *}
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "**missed**"; fi; }
ratio_last=$(calc "${R[cpu_per_probe,$LAST]} / ${R[bb_cpu_per_probe]}" 2)
ratio_first=$(calc "${R[cpu_per_probe,$FIRST]} / ${R[bb_cpu_per_probe]}" 2)
DATE=$(date -u +%F)
MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MACHINE="$(nproc) cores, $MODEL, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
BB_VERSION=$(prometheus-blackbox-exporter --version 2>&1 | awk 'NR == 1 {print $3}')
VERSIONS="lookout ${BUILT} (release, built by this run), $(nginx -v 2>&1 | sed 's/.*: //'), blackbox_exporter ${BB_VERSION}, $(rustc --version | awk '{print $1, $2}')"

row() { # figure, aim, then per-size key and verdict expression (with X for the value)
    local fig=$1 aim=$2 key=$3 expr=${4:-} line v n
    line="| $fig |"
    for n in $SIZES; do line+=" ${R[$key,$n]} |"; done
    line+=" $aim |"
    if [[ -n $expr ]]; then
        v=${R[$key,$LAST]}
        line+=" $(verdict "${expr//X/$v}") |"
    else
        line+=" |"
    fi
    echo "$line"
}
hdr="| figure |"
sep="| --- |"
for n in $SIZES; do hdr+=" $n checks |"; sep+=" ---: |"; done
hdr+=" aim (${LAST} checks) | verdict |"
sep+=" --- | --- |"

probe_table=$(
    echo "$hdr"
    echo "$sep"
    row "probes run in the window" "" runs
    row "probes/s achieved (scheduled: N / ${INTERVAL_S} s)" "" rate
    row "failed runs in the window" "0" fails "X == 0"
    row "skipped ticks in the window" "0" skipped "X == 0"
    row "CPU, % of one core" "" cpu_pct
    row "**CPU µs per probe**" "≤ 120 µs" cpu_per_probe "X <= 120"
    row "schedule lag p50, ms" "" lag_p50
    row "**schedule lag p99, ms**" "< 20 ms" lag_p99 "X < 20"
    row "runs with lag ≤ 20 ms (bucket), %" "≥ 99 %" lag_le20 "X >= 99"
    row "nginx CPU µs per request (server side, for reference)" "" nginx_per_req
    row "other CPU on the machine in the window (other processes, kernel softirq; ± tick accounting), % of one core" "" other_pct
    row "hypervisor steal in the window, % of one core" "" steal_pct
    row "1-min load average at the window's start" "" load
    row "peak RSS (VmHWM) after the window, MB" "" rss_measure
    row "**peak RSS (VmHWM) incl. /metrics fetches, MB**" "< 100 MB" rss_peak "X < 100"
)
render_table=$(
    echo "$hdr"
    echo "$sep"
    row "**/metrics render, median of ${RENDERS}, ms**" "< 50 ms" render_med "X < 50"
    row "/metrics render, slowest of ${RENDERS}, ms" "" render_max
    row "/metrics size, KiB" "" render_kb
)
scraped_table=$(
    echo "$hdr"
    echo "$sep"
    row "CPU µs per probe, incl. the scrapes" "" s_cpu_per_probe
    row "schedule lag p50, ms" "" s_lag_p50
    row "**schedule lag p99, ms**" "< 20 ms" s_lag_p99 "X < 20"
    row "runs with lag ≤ 20 ms (bucket), %" "≥ 99 %" s_lag_le20 "X >= 99"
    row "skipped ticks" "0" s_skipped "X == 0"
)
cpu_first=${R[cpu_per_probe,$FIRST]}
cpu_last=${R[cpu_per_probe,$LAST]}
bb_table=$(
    echo "| figure | value |"
    echo "| --- | ---: |"
    echo "| blackbox_exporter probes driven (ok / sent), rate | ${R[bb_ok]} / ${R[bb_sent]}, ${R[bb_rate]}/s |"
    echo "| **blackbox_exporter CPU µs per probe** | ${R[bb_cpu_per_probe]} |"
    echo "| blackbox_exporter peak RSS, MB | ${R[bb_rss]} |"
    echo "| other CPU on the machine during it (not blackbox, nginx or the driver; incl. kernel softirq), % of one core | ${R[bb_other_pct]} |"
    echo "| hypervisor steal during it, % of one core | ${R[bb_steal_pct]} |"
    echo "| lookout CPU µs per probe, $FIRST checks | $cpu_first |"
    echo "| lookout CPU µs per probe, $LAST checks | $cpu_last |"
    echo "| **ratio lookout / blackbox_exporter, $FIRST checks** | $ratio_first |"
    echo "| **ratio lookout / blackbox_exporter, $LAST checks** | $ratio_last |"
    echo "| reference: fresh-connection GET from one shared reqwest client, paced at ${BB_RATE}/s like the probes (ok ${R[floor_ok]} / ${R[floor_sent]}), client CPU µs per request | ${R[floor_cpu_per_req]} |"
    echo "| reference: the same, back to back, one at a time (ok ${R[seq_ok]} / ${R[floor_sent]}, ${R[seq_rate]}/s), client CPU µs per request | ${R[seq_cpu_per_req]} |"
    echo "| reference: plain blocking socket, no HTTP library (\`bench/floor.py\`, ok ${R[raw_ok]} / ${RAW_COUNT}), client CPU µs per request: user + system | ${R[raw_user]} + ${R[raw_sys]} = ${R[raw_cpu]} |"
)

if ((FLOWS > 0)); then
    flows_section=$(
        cat <<EOF
## Flows

${FLOWS} flows, each \`interval = "60s"\` with four steps against the same nginx (\`POST /items\` capturing \`/id\` from the JSON answer, \`GET /items/{{ id }}\` with a JSON pointer check, \`PUT /items/{{ id }}\` with a templated JSON body, \`GET\` again) and one cleanup step (\`DELETE /items/{{ id }}\`): five fresh-connection requests per run. ${WARMUP} s of warm-up, then a 60 s window measured as above.

| figure | value |
| --- | ---: |
| flow runs in the window (scheduled: ${FLOWS} a minute) | ${R[f_runs]} |
| flow runs per minute achieved | ${R[f_rate]} |
| failed flow runs / skipped ticks | ${R[f_fails]} / ${R[f_skipped]} |
| CPU, % of one core | ${R[f_cpu_pct]} |
| **CPU µs per flow run** (5 requests, templating, captures, judging, recording) | ${R[f_cpu_per_run]} |
| CPU µs per request | ${R[f_cpu_per_req]} |
| schedule lag p99, ms | ${R[f_lag_p99]} |
| **peak RSS (VmHWM), MB** | ${R[f_rss]} |
| /metrics render, one fetch after the window, ms | ${R[f_render]} |
| other CPU on the machine / hypervisor steal in the window, % of one core | ${R[f_other_pct]} / ${R[f_steal_pct]} |
EOF
    )
else
    flows_section="(Flows not measured in this run: BENCH_FLOWS=0.)"
fi

missed=()
awk "BEGIN { exit !($cpu_last > 120) }" && missed+=("CPU per probe at $LAST checks is ${cpu_last} µs, over the 120 µs aim")
awk "BEGIN { exit !($cpu_first > 120) }" && missed+=("CPU per probe at $FIRST checks is ${cpu_first} µs, over the 120 µs aim")
awk "BEGIN { exit !(${R[lag_p99,$LAST]} >= 20) }" && missed+=("schedule lag p99 at $LAST checks is ${R[lag_p99,$LAST]} ms, not under 20 ms")
awk "BEGIN { exit !(${R[rss_peak,$LAST]} >= 100) }" && missed+=("peak RSS at $LAST checks is ${R[rss_peak,$LAST]} MB, not under 100 MB")
awk "BEGIN { exit !(${R[render_med,$LAST]} >= 50) }" && missed+=("/metrics render at $LAST checks takes ${R[render_med,$LAST]} ms (median), not under 50 ms")
((${R[skipped,$LAST]} > 0)) && missed+=("${R[skipped,$LAST]} ticks were skipped at $LAST checks: the schedule was not kept")
((${R[fails,$LAST]} > 0)) && missed+=("${R[fails,$LAST]} runs failed at $LAST checks (against a local nginx that answers 200)")
awk "BEGIN { exit !(${R[s_lag_p99,$LAST]} >= 20) }" && missed+=("with a /metrics scrape every ${SCRAPE_EVERY} s, schedule lag p99 at $LAST checks is ${R[s_lag_p99,$LAST]} ms, not under 20 ms")
if ((${#missed[@]})); then
    misses=$(printf -- '- Missed: %s.\n' "${missed[@]}")
else
    misses="- Every aim was met in this run."
fi
noisy=""
for n in $SIZES; do
    awk "BEGIN { exit !(${R[other_pct,$n]} > 10) }" && noisy+=" other CPU use (other processes, and kernel softirq work charged to no process, some of it this benchmark's own loopback traffic) of ${R[other_pct,$n]} % of a core during the $n-check window;"
done
awk "BEGIN { exit !(${R[bb_other_pct]} > 10) }" && noisy+=" other CPU use of ${R[bb_other_pct]} % of a core during the blackbox_exporter run;"
for n in $SIZES; do
    awk "BEGIN { exit !(${R[steal_pct,$n]} > 5) }" && noisy+=" hypervisor steal of ${R[steal_pct,$n]} % of a core during the $n-check window;"
done
if [[ -n $noisy ]]; then
    misses+=$'\n'"- Caution: the machine was not quiet:${noisy%;}. Other CPU use competes for the 2 cores and their caches. Hypervisor steal is time the host gave this VM's CPUs to someone else; Linux charges it to whichever process was running, so it inflates CPU per probe as well as lag and render time."
fi

RESULTS=$(
    cat <<EOF
Measured on ${DATE} by \`bench/run.sh\` (all figures below come from one run).

- Machine: ${MACHINE}.
- Software: ${VERSIONS}.
- Setup: nginx (1 worker, access log off) on 127.0.0.1 answers \`GET /\` with 200 "ok". lookout runs N checks, all \`GET\` of that URL, \`interval = "${INTERVAL_S}s"\`, 10 groups, \`max_concurrent_probes = 256\`. Each size runs ${WARMUP} s of warm-up (start-up and first runs excluded), then a ${MEASURE} s window: CPU is the difference of utime+stime in \`/proc/PID/stat\` across the window, runs are the difference of \`sum(lookout_check_runs_total)\` across it, and lag quantiles come from the difference of the \`lookout_schedule_lag_seconds\` buckets, interpolated like \`histogram_quantile\` (so p50/p99 are only as fine as the buckets: …, 5, 10, 20, 50 ms, …). Peak RSS is \`VmHWM\` from \`/proc/PID/status\`.

${misses}

## Probe CPU and schedule lag

${probe_table}

CPU µs per probe is all of lookout's CPU in the window (probe, scheduling, judging, recording metrics and the board, its runtime) divided by the runs in the window. Each probe opens a fresh TCP connection and sends one HTTP/1.1 request.

## Comparison with blackbox_exporter

${bb_table}

Method: blackbox_exporter ${BB_VERSION} with module \`http_2xx\` (\`prober: http\`, \`preferred_ip_protocol: ip4\`) gets ${BB_COUNT} requests \`/probe?module=http_2xx&target=${TARGET}\` at ${BB_RATE}/s (at most 64 in flight) from \`bench/drive.rs\` over keep-alive connections, after 500 warm-up probes; its CPU is the difference of utime+stime across those ${BB_COUNT}. Each of its probes, like lookout's, opens a fresh connection to nginx. The comparison is not symmetric: blackbox_exporter's figure also pays for serving the \`/probe\` request and rendering that probe's metrics (its scraper-driven design), while lookout's pays for its own scheduling, judging and recording into the registry and status board, but not for \`/metrics\` renders (none fell in the window; see below for their cost). blackbox_exporter ran at ${R[bb_rate]} probes/s and lookout at ${R[rate,$FIRST]} and ${R[rate,$LAST]} probes/s. The two reference rows are \`bench/drive.rs\` itself making fresh-connection GETs to nginx through one shared reqwest client (tokio multi-threaded runtime, \`pool_max_idle_per_host(0)\`), with no per-request client, tracing, judging or recording: once paced at ${BB_RATE}/s by a timer (so each request also pays for timer wake-ups and worker threads parking and unparking, as a scheduler's probes do), and once back to back, one at a time. The last row is \`bench/floor.py\`: a blocking socket that connects, writes one HTTP/1.1 request, reads to the close and closes, one at a time. Its *system* time is the kernel's share of a fresh loopback connection (on loopback, the client's system calls also carry part of the server side's TCP work), which no client can avoid; it is the floor to hold the 120 µs aim against on this machine.

## /metrics render time

${render_table}

Time is curl's \`time_total\` for ${RENDERS} sequential \`GET /metrics\` on loopback, taken right after the measuring window while the N checks kept running, so it includes the scheduler's load on the 2 cores.

### While being scraped

The same daemon, right after the render timings: a further ${SCRAPED} s window with one \`GET /metrics\` every ${SCRAPE_EVERY} s, as a Prometheus server would scrape it. The headline lag figures above have no scrape in their window; these show what scrapes do to the schedule.

${scraped_table}

${flows_section}
EOF
)

echo
echo "$RESULTS"

if ((WRITE)); then
    OUT=$ROOT/BENCHMARKS.md
    if [[ -f $OUT ]] && grep -q '^<!-- bench/run.sh: begin -->$' "$OUT" && grep -q '^<!-- bench/run.sh: end -->$' "$OUT"; then
        # Replace only the generated part; text outside the markers is kept.
        printf '%s\n' "$RESULTS" >"$TMP/results.md"
        awk -v f="$TMP/results.md" '
            /^<!-- bench\/run.sh: begin -->$/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
            /^<!-- bench\/run.sh: end -->$/ { skip = 0 }
            !skip { print }
        ' "$OUT" >"$TMP/BENCHMARKS.md"
        cp "$TMP/BENCHMARKS.md" "$OUT"
    else
        {
            echo "# Benchmarks"
            echo
            echo "Produced by \`bench/run.sh\` (about 5 minutes after the release build; it installs nginx-light and prometheus-blackbox-exporter from Debian if missing). Re-run it to refresh the part between the markers; text outside them is kept."
            echo
            echo "<!-- bench/run.sh: begin -->"
            printf '%s\n' "$RESULTS"
            echo "<!-- bench/run.sh: end -->"
        } >"$OUT"
    fi
    log "wrote $OUT"
fi
