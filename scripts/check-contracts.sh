#!/usr/bin/env bash
# Contract checks (scripts/test.sh runs them; so does CI):
#   1. the committed generated code is what scripts/gen-protos.sh makes from the protos now;
#   2. the protos pass `buf lint`;
#   3. no breaking change against the base commit's contracts: `buf breaking` for the protos,
#      contracts/tools/schema_diff.py for the event schemas, contracts/tools/openapi_diff.py for
#      the edge's OpenAPI document (tests/contracts/test_edge_openapi.py keeps it fresh).
# The base is CONTRACTS_BASE_REF (default HEAD~1, the commit before the one under test; it also
# covers uncommitted changes). With no base commit or no contracts in it there is nothing to break.
set -euo pipefail
cd "$(dirname "$0")/.."

python=.venv/bin/python
buf=.venv/bin/buf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "-- generated code is fresh"
bash scripts/gen-protos.sh "$tmp/generated"
if ! diff -r -q -x __pycache__ "$tmp/generated/agora" contracts/python/agora; then
  echo "contracts/python is stale: run scripts/gen-protos.sh and commit the result" >&2
  exit 1
fi

echo "-- buf lint"
"$buf" lint contracts/proto

base=${CONTRACTS_BASE_REF:-HEAD~1}
if ! base_commit=$(git rev-parse --verify --quiet "$base^{commit}"); then
  echo "-- no base commit ($base): nothing to compare"
  exit 0
fi
mkdir -p "$tmp/base"
for path in contracts/proto contracts/events contracts/openapi/edge.json; do
  if git cat-file -e "$base_commit:$path" 2>/dev/null; then
    git archive "$base_commit" "$path" | tar -x -C "$tmp/base"
  fi
done

if [ -d "$tmp/base/contracts/proto" ]; then
  echo "-- buf breaking against $base"
  "$buf" breaking contracts/proto --against "$tmp/base/contracts/proto"
else
  echo "-- no protos at $base: nothing to compare"
fi

if [ -d "$tmp/base/contracts/events" ]; then
  echo "-- event schemas against $base"
  "$python" contracts/tools/schema_diff.py "$tmp/base/contracts/events" contracts/events
else
  echo "-- no event schemas at $base: nothing to compare"
fi

if [ -f "$tmp/base/contracts/openapi/edge.json" ]; then
  echo "-- edge OpenAPI document against $base"
  "$python" contracts/tools/openapi_diff.py "$tmp/base/contracts/openapi/edge.json" contracts/openapi/edge.json
else
  echo "-- no edge OpenAPI document at $base: nothing to compare"
fi
