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

# start_nginx: nginx (1 worker, no access log) on a free loopback port;
# sets NGINX_PORT, NGINX_PID and TARGET (its "/" answers 200 "ok").
start_nginx() {
    NGINX_PORT=$(free_port)
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    default_type text/plain;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location = / { return 200 "ok\n"; }
        # For the flow benchmark: create answers an id, the item routes answer JSON.
        location = /items { default_type application/json; return 201 '{"id":"item-42"}'; }
        location ^~ /items/ { default_type application/json; return 200 '{"id":"item-42","ok":true}'; }
    }
}
EOF
    nginx -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    TARGET=http://127.0.0.1:$NGINX_PORT/
    wait_http "$TARGET"
    log "nginx on $TARGET"
}

# quantile Q BEFORE AFTER: histogram_quantile over the buckets' difference.
quantile() {
    awk -v q="$1" '
        FNR == NR { if ($1 == "bucket") before[$2] = $3; next }
        $1 == "bucket" { n++; le[n] = $2; cum[n] = $3 - before[$2] }
        END {
            total = cum[n]
            if (total <= 0) { print "nan"; exit }
            rank = q * total; lower = 0; below = 0
            for (i = 1; i <= n; i++) {
                if (cum[i] >= rank) {
                    if (le[i] == "+Inf") { print lower; exit }
                    inb = cum[i] - below
                    printf "%.6f\n", lower + (le[i] - lower) * (inb > 0 ? (rank - below) / inb : 1)
                    exit
                }
                lower = le[i]; below = cum[i]
            }
        }
    ' "$2" "$3"
}

# lag_buckets FILE [GROUP]: "bucket LE COUNT" lines of lookout_schedule_lag_seconds
# from one /metrics scrape, summed over groups (or of one group), in LE order.
lag_buckets() {
    awk -v g="${2:-}" '
        /^lookout_schedule_lag_seconds_bucket\{/ && (g == "" || index($0, "group=\"" g "\"")) {
            match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            if (!(le in sum)) order[++n] = le
            sum[le] += $NF
        }
        END { for (i = 1; i <= n; i++) print "bucket", order[i], sum[order[i]] }' "$1"
}
