#!/usr/bin/env bash
# Run every test: the Rust workspace (engine, C ABI with its C programs under
# valgrind, X11 under Xvfb, CLI), then the Python wheel's pytest suite.
# Installs missing system packages first (see scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
if cargo fmt --version >/dev/null 2>&1; then
    echo "== cargo fmt --check"
    cargo fmt --all --check
fi
echo "== cargo test --workspace"
cargo test --workspace --locked
echo "== python"
bash scripts/test-python.sh -q
