#!/usr/bin/env bash
# Shared by the benchmark scripts: logging, process bookkeeping (every
# process started is stopped on exit), ports, waiting, /proc readings.
# Source it after `set -euo pipefail`.

log() { printf '[bench %s] %s\n' "$(date -u +%T)" "$*" >&2; }

# --- process bookkeeping -----------------------------------------------------
TMP=$(mktemp -d /tmp/lookout-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop() { # pid: stop one process we started and forget it
    local pid=$1 keep=() p
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # url: up to 30 s
    local i
    for ((i = 0; i < 300; i++)); do
        curl -sf -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    log "timed out waiting for $1"
    return 1
}

cpu_ticks() { # pid -> utime+stime of all its threads, in clock ticks
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
vm_kb() { # pid field -> kB
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}
sys_busy() { # all CPUs' busy time since boot, in clock ticks (user nice system irq softirq)
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat
}
sys_steal() { # time the hypervisor gave to someone else, in clock ticks
    awk '$1 == "cpu" {print $9; exit}' /proc/stat
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
median() { sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# replace_section FILE NAME TEXT: puts TEXT between the markers
# `<!-- NAME: begin -->` and `<!-- NAME: end -->` in FILE, keeping the
# rest; appends the section with its markers when FILE lacks them.
replace_section() {
    local file=$1 name=$2 text=$3 tmp
    tmp=$(mktemp)
    printf '%s\n' "$text" >"$tmp.text"
    if grep -qF "<!-- $name: begin -->" "$file" && grep -qF "<!-- $name: end -->" "$file"; then
        awk -v f="$tmp.text" -v b="<!-- $name: begin -->" -v e="<!-- $name: end -->" '
            $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
            $0 == e { skip = 0 }
            !skip { print }
        ' "$file" >"$tmp"
        cp "$tmp" "$file"
    else
        { echo; echo "<!-- $name: begin -->"; cat "$tmp.text"; echo "<!-- $name: end -->"; } >>"$file"
    fi
    rm -f "$tmp" "$tmp.text"
}
