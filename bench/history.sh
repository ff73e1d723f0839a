#!/usr/bin/env bash
# lookout benchmark: the status page and the JSON API with N checks and
# DAYS days of history, and the size of the history database.
#
#   bench/history.sh              # run, print, update BENCHMARKS.md
#   bench/history.sh --no-write   # run and print only
#
# Knobs (environment): BENCH_HISTORY_CHECKS (10000), BENCH_HISTORY_DAYS (7),
# BENCH_HISTORY_KEEP (200 results per check, the default keep_results),
# BENCH_HISTORY_FETCHES (10 per endpoint).
#
# The history is written by `bench-history` (bench/history.rs) through
# lookout's own store. lookout then starts on that database with every
# check on a 1-hour interval, so no probe runs while the page is measured:
# what is measured is building the page from the board and the history.
# All traffic goes to 127.0.0.1; every loop is bounded.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=1
[[ ${1:-} == --no-write ]] && WRITE=0
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-bench}
N=${BENCH_HISTORY_CHECKS:-10000}
DAYS=${BENCH_HISTORY_DAYS:-7}
KEEP=${BENCH_HISTORY_KEEP:-200}
FETCHES=${BENCH_HISTORY_FETCHES:-10}

source "$ROOT/bench/lib.sh"

command -v curl >/dev/null || { log "curl is needed"; exit 1; }
log "building lookout and bench-history (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release --quiet --bin lookout --example bench-history
BUILT="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')"
LOOKOUT=$CARGO_TARGET_DIR/release/lookout
FILL=$CARGO_TARGET_DIR/release/examples/bench-history

DB=$TMP/history.db
log "writing $DAYS days of history for $N checks"
t0=$(now)
"$FILL" "$DB" "$N" "$DAYS" "$KEEP" 2>"$TMP/fill.log"
fill_s=$(calc "$(now) - $t0" 1)
cat "$TMP/fill.log" >&2
db_bytes=$(($(stat -c %s "$DB") + $(stat -c %s "$DB-wal" 2>/dev/null || echo 0)))
rows() { python3 -c "import sqlite3,sys; c=sqlite3.connect('file:$DB?mode=ro', uri=True); print(c.execute('SELECT COUNT(*) FROM $1').fetchone()[0])"; }

PORT=$(free_port)
CFG=$TMP/lookout.toml
{
    printf '[server]\nlisten = "127.0.0.1:%s"\n\n' "$PORT"
    printf '[defaults]\ninterval = "1h"\n\n'
    printf '[store]\npath = "%s"\n\n' "$DB"
    for ((i = 1; i <= N; i++)); do
        printf '[[checks]]\nname = "c%05d"\ngroup = "g%02d"\nurl = "http://127.0.0.1:9/"\n\n' "$i" $((i % 10))
    done
} >"$CFG"
t0=$(now)
"$LOOKOUT" run --config "$CFG" 2>"$TMP/lookout.log" &
LPID=$!
PIDS+=("$LPID")
wait_http "http://127.0.0.1:$PORT/readyz"
start_s=$(calc "$(now) - $t0" 2)

# fetch URL: FETCHES times; prints "first median size"
fetch() {
    local i times=()
    : >"$TMP/fetch.txt"
    for ((i = 0; i < FETCHES; i++)); do
        curl -sf --max-time 60 -o /dev/null -w '%{time_total} %{size_download}\n' "$1" >>"$TMP/fetch.txt"
    done
    echo "$(calc "$(head -1 "$TMP/fetch.txt" | cut -d' ' -f1) * 1000" 1) $(calc "$(cut -d' ' -f1 "$TMP/fetch.txt" | median) * 1000" 1) $(calc "$(head -1 "$TMP/fetch.txt" | cut -d' ' -f2) / 1024" 0)"
}
BASE=http://127.0.0.1:$PORT
ONE=$(printf 'c%05d' $((N / 2 + 1)))
read -r page_first page_med page_kb < <(fetch "$BASE/")
read -r api_first api_med api_kb < <(fetch "$BASE/api/v1/status")
read -r det_first det_med det_kb < <(fetch "$BASE/api/v1/checks/$ONE")
read -r dpage_first dpage_med dpage_kb < <(fetch "$BASE/check/$ONE")
read -r ch_first ch_med ch_kb < <(fetch "$BASE/api/v1/changes?limit=100")
rss=$(calc "$(vm_kb "$LPID" VmHWM) / 1024" 1)
stop "$LPID"

# The same number of checks as one matrix entry (SIDE × SIDE), so the page
# and the API also lay out a grid of every check. Their names are not the
# history's, so this run has no uptime to compute: compare its medians.
SIDE=$(python3 -c "import math; print(math.isqrt($N))")
GRID_CFG=$TMP/grid.toml
values=$(python3 -c "print(', '.join('\"%03d\"' % i for i in range($SIDE)))")
{
    printf '[server]\nlisten = "127.0.0.1:%s"\n\n' "$PORT"
    printf '[defaults]\ninterval = "1h"\n\n'
    printf '[store]\npath = "%s"\n\n' "$DB"
    printf '[[checks]]\nname = "m"\nurl = "http://127.0.0.1:9/{{ row }}/{{ col }}"\nmatrix = { row = [%s], col = [%s] }\n' "$values" "$values"
} >"$GRID_CFG"
"$LOOKOUT" run --config "$GRID_CFG" 2>"$TMP/lookout-grid.log" &
LPID=$!
PIDS+=("$LPID")
wait_http "http://127.0.0.1:$PORT/readyz"
read -r gpage_first gpage_med gpage_kb < <(fetch "$BASE/")
read -r gapi_first gapi_med gapi_kb < <(fetch "$BASE/api/v1/status")
stop "$LPID"

RESULTS=$(
    cat <<MD
Measured on $(date -u +%F) by \`bench/history.sh\` (lookout ${BUILT}, release; $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/ [0-9]*-Core Processor//')).

Setup: \`bench-history\` writes ${DAYS} days of history for ${N} checks through lookout's own store: one run per check per hour (so every hourly and daily rollup row exists, as after ${DAYS} days of running), the newest ${KEEP} results of each check, and two state changes per check per day. It took ${fill_s} s. lookout then starts on that database with the ${N} checks on a 1-hour interval, so no probe runs during the measurement. Each endpoint is fetched ${FETCHES} times in a row with curl; "first" is the first fetch (it computes every check's 24-hour and 7-day uptime from the rollups; from 1,000 checks on, that result is then reused for 30 s), "median" is over all ${FETCHES}.

| figure | value |
| --- | ---: |
| history database (file + WAL), MB | $(calc "$db_bytes / 1048576" 1) |
| rows: results / hourly rollups / daily rollups / state changes | $(rows results) / $(rows rollup_hour) / $(rows rollup_day) / $(rows changes) |
| start-up until /readyz (incl. restoring state and sparklines), s | ${start_s} |
| **\`GET /\`, first / median, ms** | ${page_first} / ${page_med} |
| \`GET /\` size, KiB | ${page_kb} |
| **\`GET /api/v1/status\`, first / median, ms** | ${api_first} / ${api_med} |
| \`GET /api/v1/status\` size, KiB | ${api_kb} |
| \`GET /api/v1/checks/${ONE}\` (uptime over 4 windows, 100 results, changes), first / median, ms | ${det_first} / ${det_med} |
| \`GET /check/${ONE}\` (its page), first / median, ms | ${dpage_first} / ${dpage_med} |
| \`GET /api/v1/changes?limit=100\`, first / median, ms | ${ch_first} / ${ch_med} |
| peak RSS of lookout, MB | ${rss} |
| the same number of checks as one ${SIDE} × ${SIDE} matrix (a grid of every check): \`GET /\` / \`GET /api/v1/status\`, median, ms | ${gpage_med} / ${gapi_med} |
| \`GET /\` / \`GET /api/v1/status\` size with the grid, KiB | ${gpage_kb} / ${gapi_kb} |
MD
)
echo "$RESULTS"
if ((WRITE)); then
    replace_section "$ROOT/BENCHMARKS.md" "bench/history.sh" "$RESULTS"
    log "wrote $ROOT/BENCHMARKS.md"
fi
