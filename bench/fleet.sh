#!/usr/bin/env bash
# lookout benchmark: many probers. Placement (rendezvous hashing of N
# checks over 1 to 8 shards, what every instance does at each load), and
# `lookout view` over a real Prometheus holding N checks from 3 locations
# (synthetic exporters, 5 % failing in each, 2 % everywhere): one read of the fleet, the
# view built, and its /api/v1/status and / over HTTP. See bench/fleet.rs.
#
#   bench/fleet.sh              # run, print, update BENCHMARKS.md
#   bench/fleet.sh --no-write   # run and print only
#
# Knobs (environment): BENCH_FLEET_CHECKS (10000), BENCH_FLEET_RUNS (10).
# Needs Debian's prometheus (installed if missing). Everything listens on
# 127.0.0.1; every process started is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=1
[[ ${1:-} == --no-write ]] && WRITE=0
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target-bench}
N=${BENCH_FLEET_CHECKS:-10000}
RUNS=${BENCH_FLEET_RUNS:-10}

source "$ROOT/bench/lib.sh"

if ! command -v prometheus >/dev/null; then
    log "installing prometheus"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq prometheus >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq prometheus >/dev/null
    fi
fi

log "building bench-fleet (release, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release --quiet --example bench-fleet
BUILT="lookout $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+uncommitted changes')"
log "running: $N checks, $RUNS runs"
TABLES=$("$CARGO_TARGET_DIR/release/examples/bench-fleet" "$N" "$RUNS")

RESULTS=$(
    cat <<MD
Measured on $(date -u +%F) by \`bench/fleet.sh\` (${BUILT}, release; $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/ [0-9]*-Core Processor//'); $(prometheus --version 2>&1 | head -1)).

Placement is what sharding costs each instance: it runs at each load and reload, never per probe (a shard's scheduler, probes and /metrics see only the checks it owns).

${TABLES}

The view reads 18 instant queries at once (the global rules' series and the per-location details); nearly all of a read's time is Prometheus evaluating them on the same 2 cores (building the view from the answers is the second row), well inside the default 15 s refresh and 10 s timeout. Prometheus evaluated lookout-global.yml and lookout-recording.yml every 5 s over $(calc "$N * 3" 0) per-location check series meanwhile. For the page and API of one instance with 10k checks, see "Page and API with 10k checks and 7 days of history".
MD
)
echo "$RESULTS"
if ((WRITE)); then
    replace_section "$ROOT/BENCHMARKS.md" "bench/fleet.sh" "$RESULTS"
    log "wrote $ROOT/BENCHMARKS.md"
fi
