#!/usr/bin/env bash
# Engine micro-benchmarks of issue 16, each against its limit in the same run:
#   copy: put_frame vs memcpy at 720p/1080p/4K, the first two frames of a fresh
#         stream with and without prefault, the banded 4K drop-in lock
#         (assembled vs kept in place);
#   wake: a two-process ping-pong over two streams vs over a Unix socket and a
#         bare futex, between the same two threads.
# Each prints a "summary" block of markdown rows at the end (docs/benchmarks.md).
#
# Huge pages: /dev/shm is mounted huge=never on most systems, so the first-touch
# rows on huge pages appear only when SHMIMAGE_BENCH_HUGE_DIR names a tmpfs
# mounted with huge=within_size (with huge=advise only sparse files get huge pages,
# and stream files are created with their pages reserved), e.g. (root):
#   mkdir -p /tmp/shm-huge && mount -t tmpfs -o huge=within_size,size=512M shm-huge /tmp/shm-huge
#
# Usage: scripts/bench-engine.sh [copy|wake]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
benches=("$@")
[ ${#benches[@]} -eq 0 ] && benches=(copy wake)
for b in "${benches[@]}"; do
    cargo bench -p shmimage --bench "$b"
done
