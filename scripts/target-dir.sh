#!/usr/bin/env bash
# Prints cargo's target directory for this workspace: `target/` unless CARGO_TARGET_DIR or a
# cargo config (build.target-dir) moves it. The scripts that run a built binary ask here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --offline \
  | grep -o '"target_directory":"[^"]*"' | head -n 1 | cut -d'"' -f4
