#!/usr/bin/env bash
# The whole test suite: static checks, contract checks, then every test against real servers.
# `make test` runs this after installing; extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint"
.venv/bin/ruff check chassis cli services tests scripts benchmarks
echo "== contracts (generated code fresh, no breaking change)"
bash scripts/check-contracts.sh
echo "== tests"
.venv/bin/pytest "$@"
