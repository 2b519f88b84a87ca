#!/usr/bin/env bash
# Build the Python wheel (ensight_grpc_shmem + shmimage) and run its pytest
# suite in a private virtualenv. Needs only python3 (with venv) and cargo;
# maturin, numpy, Pillow and pytest come from PyPI.
#
#   scripts/test-python.sh [pytest args...]
#
# SHMIMAGE_VENV       where the virtualenv lives (default: target/pyvenv)
# SHMIMAGE_MANYLINUX=1  build the manylinux2014 (glibc 2.17) wheel with
#                     `maturin build --zig` (zig from the ziglang package)
#                     and run the suite against it, checking its glibc needs
# CARGO_TARGET_DIR is honoured by the build.
#
# The suite includes tests/test_install.py: the wheel installed offline into
# a fresh virtualenv without numpy, and `pip install` of the crate directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$root/crates/shmimage-python"
venv="${SHMIMAGE_VENV:-$root/target/pyvenv}"
wheels="${CARGO_TARGET_DIR:-$root/target}/wheels-python"

if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv"; then
        echo "error: 'python3 -m venv' failed; install the venv module (e.g. apt-get install python3-venv)" >&2
        exit 1
    fi
fi
py="$venv/bin/python"
"$py" -m pip install --quiet "maturin>=1.5,<2" numpy pytest pytest-timeout pillow

build=(build --release --quiet -o "$wheels" --interpreter "$py")
if [ "${SHMIMAGE_MANYLINUX:-0}" = 1 ]; then
    "$py" -m pip install --quiet ziglang
    build+=(--zig --compatibility manylinux2014)
    export SHMIMAGE_MAX_GLIBC=2.17
fi
rm -rf "$wheels"
(cd "$crate" && PATH="$venv/bin:$PATH" "$venv/bin/maturin" "${build[@]}")
wheel="$(ls "$wheels"/shmimage-*.whl)"
"$py" -m pip install --quiet --force-reinstall --no-deps "$wheel"
export SHMIMAGE_WHEEL="$wheel" SHMIMAGE_CRATE="$crate"

# Run from the tests directory so the installed package, not the source tree,
# is imported.
cd "$crate/tests"
"$py" -m pytest -p no:cacheprovider --timeout=300 "$@" .
