#!/usr/bin/env bash
# lookout benchmark: loading a large config. `lookout check-config` on flat
# files of 10k, 40k and 100k checks (one [[checks]] table each, no matrix):
# wall time and peak RSS; then the daemon on the largest file: start-up
# until /readyz, and one reload (`POST /-/reload`) of the same file.
#
#   bench/config_load.sh              # run, print, update BENCHMARKS.md
#   bench/config_load.sh --no-write   # run and print only
#
# Knobs (environment): BENCH_CONFIG_SIZES ("10000 40000 100000"),
# BENCH_CONFIG_RUNS (3 runs of each size; the median time and the highest
# RSS are reported), BENCH_CONFIG_DAEMON (1; 0 skips the daemon part).
# LOOKOUT=/path/to/lookout measures that binary instead of building one
# (to measure an older build the same way).
#
# Wall time and peak RSS come from GNU time (`/usr/bin/time -f '%e %M'`,
# Debian package `time`, installed if missing). Each check probes
# 127.0.0.1:9 (discard; nothing listens) every hour, so the daemon part
# sends almost nothing. Every loop is bounded, and every process started
# here is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=1
[[ ${1:-} == --no-write ]] && WRITE=0
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-bench}
SIZES=${BENCH_CONFIG_SIZES:-"10000 40000 100000"}
RUNS=${BENCH_CONFIG_RUNS:-3}
DAEMON=${BENCH_CONFIG_DAEMON:-1}

source "$ROOT/bench/lib.sh"

need_pkgs=()
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
command -v curl >/dev/null || need_pkgs+=(curl)
if ((${#need_pkgs[@]})); then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "${need_pkgs[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
    fi
fi

if [[ -n ${LOOKOUT:-} ]]; then
    BUILT="the binary $LOOKOUT"
else
    log "building lookout (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release --quiet --bin lookout
    BUILT="lookout $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')"
    LOOKOUT=$CARGO_TARGET_DIR/release/lookout
fi

# flat N PORT FILE: N checks, each its own [[checks]] table.
flat() {
    awk -v n="$1" -v port="$2" 'BEGIN {
        printf "[server]\nlisten = \"127.0.0.1:%d\"\n\n[defaults]\ninterval = \"1h\"\ntimeout = \"2s\"\n\n[store]\npath = \":memory:\"\n\n", port
        for (i = 1; i <= n; i++)
            printf "[[checks]]\nname = \"check-%06d\"\ngroup = \"g%02d\"\nurl = \"http://127.0.0.1:9/items/%d?probe=1\"\nexpect = { status = [200], max_latency = \"500ms\" }\n\n", i, i % 20, i
    }' >"$3"
}

ROWS=""
for n in $SIZES; do
    cfg=$TMP/flat-$n.toml
    flat "$n" 9 "$cfg"
    mb=$(calc "$(stat -c %s "$cfg") / 1048576" 1)
    times=() rss=0
    for ((r = 0; r < RUNS; r++)); do
        /usr/bin/time -o "$TMP/time.txt" -f '%e %M' "$LOOKOUT" check-config "$cfg" >/dev/null 2>"$TMP/err.txt" ||
            { log "check-config failed on $n checks:"; cat "$TMP/err.txt" >&2; exit 1; }
        read -r secs kb <"$TMP/time.txt"
        times+=("$secs")
        if ((kb > rss)); then rss=$kb; fi
    done
    med=$(printf '%s\n' "${times[@]}" | median)
    log "$n checks ($mb MB): ${times[*]} s, peak RSS $(calc "$rss / 1024" 1) MB"
    ROWS+="| $n | $mb | $(calc "$med" 2) | $(printf '%s\n' "${times[@]}" | sort -g | head -1) – $(printf '%s\n' "${times[@]}" | sort -g | tail -1) | $(calc "$rss / 1024" 1) |"$'\n'
done

DAEMON_TEXT=""
if ((DAEMON)); then
    n=${SIZES##* }
    PORT=$(free_port)
    cfg=$TMP/daemon-$n.toml
    flat "$n" "$PORT" "$cfg"
    t0=$(now)
    "$LOOKOUT" run --config "$cfg" --web.enable-lifecycle >/dev/null 2>"$TMP/lookout.log" &
    LPID=$!
    PIDS+=("$LPID")
    for ((i = 0; i < 1200; i++)); do # up to 120 s
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/readyz" && break
        sleep 0.1
    done
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/readyz" || { log "lookout did not get ready"; tail -5 "$TMP/lookout.log" >&2; exit 1; }
    start_s=$(calc "$(now) - $t0" 2)
    sleep 2
    t0=$(now)
    reload=$(curl -s --max-time 300 -X POST "http://127.0.0.1:$PORT/-/reload")
    reload_s=$(calc "$(now) - $t0" 2)
    log "daemon, $n checks: ready after $start_s s; reload ${reload_s} s: $reload"
    daemon_rss=$(calc "$(vm_kb "$LPID" VmHWM) / 1024" 1)
    stop "$LPID"
    DAEMON_TEXT="The daemon on the ${n}-check file (\`lookout run --web.enable-lifecycle\`, history in memory): ready (\`/readyz\` answers) after **${start_s} s**; \`POST /-/reload\` of the unchanged file took **${reload_s} s** (\`${reload%$'\n'}\`); peak RSS ${daemon_rss} MB."
fi

RESULTS=$(
    cat <<MD
Measured on $(date -u +%F) by \`bench/config_load.sh\` (${BUILT}, release; $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/ [0-9]*-Core Processor//')).

Setup: a flat file of N \`[[checks]]\` tables (name, group, URL, an \`expect\` with a status and a latency bound; no matrix), \`lookout check-config FILE >/dev/null\` run ${RUNS} times each; wall time and peak RSS from GNU time.

| checks | file, MB | wall time, median, s | fastest – slowest, s | peak RSS, MB |
| ---: | ---: | ---: | ---: | ---: |
${ROWS%$'\n'}

${DAEMON_TEXT}
MD
)
echo "$RESULTS"
if ((WRITE)); then
    replace_section "$ROOT/BENCHMARKS.md" "bench/config_load.sh" "$RESULTS"
    log "wrote $ROOT/BENCHMARKS.md"
fi
