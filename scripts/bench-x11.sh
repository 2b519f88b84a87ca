#!/usr/bin/env bash
# Frames per second of `shmimage view` at 1920x1080 on each drawing path
# (ShmPutImage, shared pixmap + CopyArea, core PutImage) and of
# `shmimage capture` (ShmGetImage vs core GetImage), in one run under a
# private Xvfb. Prints a table with ratios against the core path.
#
#   scripts/bench-x11.sh [SECONDS] [ROUNDS]   (default 5 s, 3 rounds)
#
# The view paths run interleaved, ROUNDS times each, and the median counts:
# on a shared machine the load drifts, and interleaving spreads that drift
# over every path alike.
#
# Needs Xvfb (apt-get install xvfb). Uses CARGO_TARGET_DIR if set.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
W=1920 H=1080
command -v Xvfb >/dev/null || { echo "bench-x11: Xvfb not found (apt-get install xvfb)" >&2; exit 1; }

cargo build --release -q -p shmimage-cli -p shmimage-x11 --examples --bins
T=${CARGO_TARGET_DIR:-target}/release
BIN=$T/shmimage

WORK=$(mktemp -d /dev/shm/shmimage-bench.XXXXXX 2>/dev/null || mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Xvfb picks a free display and writes its number to fd 3.
exec 3> "$WORK/display"
Xvfb -displayfd 3 -screen 0 ${W}x${H}x24 -nolisten tcp -noreset 2>"$WORK/xvfb.log" &
PIDS+=($!)
exec 3>&-
for _ in $(seq 100); do [ -s "$WORK/display" ] && break; sleep 0.1; done
DPY=:$(head -n1 "$WORK/display")

fps_of() { grep -o '= [0-9.]* frames/s' "$1" | tail -n1 | awk '{print $2}'; }

declare -A VIEW CAP RUNS
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
for round in $(seq "$ROUNDS"); do
    for path in shm-put shm-pixmap core; do
        f=$WORK/view-$path-$round.shm
        "$T/examples/pattern_server" "$f" $W $H --seconds $((SECS + 10)) 2>/dev/null &
        srv=$!; PIDS+=($srv)
        sleep 0.3
        log=$WORK/view-$path-$round.log
        "$BIN" view "$f" --display "$DPY" --path $path --seconds "$SECS" --timeout 30 2>"$log"
        kill $srv 2>/dev/null || true; wait $srv 2>/dev/null || true
        grep -q "path $path" "$log" || echo "bench-x11: view --path $path fell back: $(grep -o 'path [a-z-]*' "$log" | head -n1)" >&2
        RUNS[$path]="${RUNS[$path]:-} $(fps_of "$log")"
    done
done
for path in shm-put shm-pixmap core; do
    VIEW[$path]=$(echo "${RUNS[$path]}" | median)
done

# Capture the root window (full screen) as fast as possible, with a client
# taking every frame.
for mode in shm core; do
    f=$WORK/cap-$mode.shm
    extra=(); [ $mode = core ] && extra=(--no-shm)
    "$BIN" capture --display "$DPY" --root --fps 0 --seconds "$SECS" "${extra[@]}" "$f" 2>"$WORK/cap-$mode.log" &
    cap=$!; PIDS+=($cap)
    for _ in $(seq 100); do [ -s "$f" ] && break; sleep 0.05; done
    "$T/examples/drain_client" "$f" $((SECS + 3)) 2>/dev/null &
    drn=$!; PIDS+=($drn)
    wait $cap || true
    kill $drn 2>/dev/null || true; wait $drn 2>/dev/null || true
    CAP[$mode]=$(fps_of "$WORK/cap-$mode.log")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
echo
echo "shmimage X11 benchmark: ${W}x${H}, ${SECS} s per run, view median of $ROUNDS interleaved runs, Xvfb $DPY, $(nproc) cores"
for path in shm-put shm-pixmap core; do echo "  view $path runs:${RUNS[$path]}"; done
printf '%-34s %12s %10s\n' "measurement" "frames/s" "vs core"
printf '%-34s %12s %10s\n' "view  ShmPutImage (shm-put)" "${VIEW[shm-put]}" "$(ratio "${VIEW[shm-put]}" "${VIEW[core]}")"
printf '%-34s %12s %10s\n' "view  shared pixmap (shm-pixmap)" "${VIEW[shm-pixmap]}" "$(ratio "${VIEW[shm-pixmap]}" "${VIEW[core]}")"
printf '%-34s %12s %10s\n' "view  core PutImage (core)" "${VIEW[core]}" "1.00x"
printf '%-34s %12s %10s\n' "capture ShmGetImage" "${CAP[shm]}" "$(ratio "${CAP[shm]}" "${CAP[core]}")"
printf '%-34s %12s %10s\n' "capture core GetImage" "${CAP[core]}" "1.00x"
