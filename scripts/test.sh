#!/usr/bin/env bash
# The README's test command: the Rust suite, then the Python package's (against the wheel
# scripts/setup.sh built and installed into .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --release
.venv/bin/python -m pytest -q python/tests
