#!/usr/bin/env bash
# The test command (README, .ci/run): fetches the conformance corpora (pip, cached under
# target/corpus keyed by version), then builds and runs every test of the workspace in release
# mode. Needs only the Rust toolchain and python3 with pip/venv on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/corpus/fetch.sh
cargo test --workspace --release
