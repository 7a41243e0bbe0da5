#!/usr/bin/env bash
# Set up (with the test servers and tools), lint, type-check and run the whole test suite.
# The suite runs inside a private network namespace (only loopback, with its
# own PostgreSQL), so a request that tried to leave the machine would fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n bash scripts/in_netns.sh "$@"
fi
echo "test: not root or no unshare: running without a private network namespace" >&2
exec bash scripts/in_netns.sh "$@"
