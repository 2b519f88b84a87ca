#!/usr/bin/env bash
# End-to-end benchmark suite (issue 7): shmimage between two processes against
# memcpy, Unix socket, pipe, TCP loopback, GStreamer shm and iceoryx2, and the
# native stream with 1-8 reader processes against iceoryx2 (issue 12).
# Prints a markdown table and writes target/bench/bench.md, bench.json (the
# numbers) and bench.png (drawn from bench.json; --replot redraws it alone).
#
# Installs nothing. What it uses when present (Debian package names):
#   gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
#   gstreamer1.0-plugins-bad   the GStreamer row (shmsink/shmsrc); skipped if missing
#   fonts-dejavu-core          text in the plot (any TrueType font under /usr/share/fonts/truetype)
#   coreutils (stdbuf)         line-buffered gst-launch output
# The first build compiles iceoryx2 and plotters (a few minutes on 2 cores);
# SHMIMAGE_BENCH_CARGO_FLAGS="--no-default-features --features plot" leaves iceoryx2 out.
#
# Usage: scripts/bench.sh [--quick] [--seconds S] [--sizes 720p,1080p,4K] [--out DIR] [--skip LIST]
#        scripts/bench.sh --replot docs/img/bench.json   # redraw docs/img/bench.png, measure nothing
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2086 # the flags are meant to split into words
exec cargo run --release --manifest-path crates/shmimage-bench/Cargo.toml ${SHMIMAGE_BENCH_CARGO_FLAGS:-} -- "$@"
