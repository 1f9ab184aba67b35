#!/usr/bin/env bash
# The whole test suite: Rust tests (unit, store conformance, real-binary HTTP tests), then the
# suites that need extra tools when those tools are installed (.ci/run installs them all):
#   - browser tests (Node.js + Debian's chromium)      web/tests/
#   - API fuzzing from the spec (schemathesis)          scripts/fuzz-api.sh
#   - the generated Python client against a live server  scripts/python-client.sh
# Suites whose tools are missing are skipped with a message, never silently.
set -euo pipefail
cd "$(dirname "$0")/.."

skipped=()
# A test that skips itself (a tool or library missing) appends a line here: the harness hides a
# passing test's stderr, so a skip would otherwise read "ok".
export SPRIG_SKIP_LOG
SPRIG_SKIP_LOG=$(mktemp)
trap 'rm -f "$SPRIG_SKIP_LOG"' EXIT
echo "== cargo test (workspace)"
cargo test --workspace --locked -- --skip fetched_runtimes_are_selected
# The real fetch from the package registry, on its own so that its output shows (offline, it
# skips itself into SPRIG_SKIP_LOG).
echo "== runtime fetch from the package registry (server/tests/runtimes.rs)"
cargo test --workspace --locked --test runtimes -- fetched_runtimes_are_selected --nocapture
# The suites below drive the binary `cargo test` just built (debug/sprig in cargo's target dir,
# wherever CARGO_TARGET_DIR or a cargo config puts it; workspace features with dev-dependencies).
# `cargo build -p sprig` would rebuild half the dependency tree with a narrower feature set and
# produce the same program.
SPRIG="$(scripts/target-dir.sh)/debug/sprig"
test -x "$SPRIG" || { echo "no sprig binary at $SPRIG after cargo test" >&2; exit 1; }

if command -v node >/dev/null && command -v openssl >/dev/null && [ -x /usr/bin/chromium ] && [ -f web/package.json ]; then
  echo "== browser tests (web/tests)"
  (cd web && npm ci --no-audit --no-fund && SPRIG_BIN="$SPRIG" npm test)
else
  echo "== SKIPPED browser tests: need node, openssl (its HTTPS certificate) and /usr/bin/chromium (apt-get install chromium openssl)"
  skipped+=("browser tests")
fi

ST="${SCHEMATHESIS:-$(command -v schemathesis || true)}"
if [ -n "$ST" ]; then
  SCHEMATHESIS="$ST" scripts/fuzz-api.sh "$SPRIG"
else
  echo "== SKIPPED API fuzzing: need schemathesis (pip install schemathesis) or SCHEMATHESIS=/path/to/it"
  skipped+=("API fuzzing")
fi

if command -v python3 >/dev/null && command -v curl >/dev/null; then
  echo "== Python client (openapi-python-client; scripts/python-client.sh)"
  scripts/python-client.sh "$SPRIG"
else
  echo "== SKIPPED Python client: needs python3 (with venv) and curl"
  skipped+=("Python client")
fi

if (( ${#skipped[@]} )); then
  echo "== skipped suites (see their messages above):"
  printf '   - %s\n' "${skipped[@]}"
else
  echo "== no suite skipped"
fi
if [ -s "$SPRIG_SKIP_LOG" ]; then
  echo "== $(sort -u "$SPRIG_SKIP_LOG" | wc -l) skipped tests (or parts of tests):"
  sort -u "$SPRIG_SKIP_LOG" | sed 's/^/   - /'
else
  echo "== no test skipped"
fi
