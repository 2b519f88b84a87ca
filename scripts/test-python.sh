#!/usr/bin/env bash
# Build the Python wheel (ensight_grpc_shmem + shmimage) and run its pytest
# suite in a private virtualenv. Needs only python3 (with venv) and cargo;
# maturin, numpy and pytest come from PyPI.
#
#   scripts/test-python.sh [pytest args...]
#
# SHMIMAGE_VENV   where the virtualenv lives (default: target/pyvenv)
# CARGO_TARGET_DIR is honoured by the build.
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

rm -rf "$wheels"
(cd "$crate" && "$venv/bin/maturin" build --release --quiet -o "$wheels" --interpreter "$py")
"$py" -m pip install --quiet --force-reinstall --no-deps "$wheels"/shmimage-*.whl

# Run from the tests directory so the installed package, not the source tree,
# is imported.
cd "$crate/tests"
"$py" -m pytest -p no:cacheprovider --timeout=120 "$@" .
