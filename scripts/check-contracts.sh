#!/usr/bin/env bash
# Contract checks (scripts/test.sh runs them; so does CI):
#   1. the committed generated code is what scripts/gen-protos.sh makes from the protos now;
#   2. the protos pass `buf lint`;
#   3. no breaking change in any step of the contracts' history since they were published:
#      `buf breaking` for the protos, contracts/tools/schema_diff.py for the event schemas,
#      contracts/tools/openapi_diff.py for the edge's OpenAPI document
#      (tests/contracts/test_edge_openapi.py keeps it fresh).
# The steps are each commit after the one named in contracts/published-since that changed a
# contract, against its parent, and the uncommitted contracts against HEAD: a push of several
# commits is checked commit by commit, so a break cannot hide behind a later commit. Without that
# file, every commit is a step. CONTRACTS_BASE_REF=REF instead compares the working tree with REF.
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

contract_paths=(contracts/proto contracts/events contracts/openapi/edge.json)

# extract WHERE DIR: the contracts of commit WHERE (or of the working tree, for "worktree") in DIR.
extract() {
  local where=$1 dir=$2 path
  mkdir -p "$dir"
  for path in "${contract_paths[@]}"; do
    if [ "$where" = worktree ]; then
      [ -e "$path" ] && mkdir -p "$dir/$(dirname "$path")" && cp -R "$path" "$dir/$path"
    elif git cat-file -e "$where:$path" 2>/dev/null; then
      git archive "$where" "$path" | tar -x -C "$dir"
    fi
  done
  return 0
}

# compare OLD NEW LABEL: the contracts in directory NEW break nothing of those in OLD.
compare() {
  local old=$1 new=$2 label=$3
  if [ -d "$old/contracts/proto" ]; then
    echo "-- buf breaking: $label"
    "$buf" breaking "$new/contracts/proto" --against "$old/contracts/proto"
  else
    echo "-- no protos before $label: nothing to compare"
  fi
  if [ -d "$old/contracts/events" ]; then
    echo "-- event schemas: $label"
    "$python" contracts/tools/schema_diff.py "$old/contracts/events" "$new/contracts/events"
  else
    echo "-- no event schemas before $label: nothing to compare"
  fi
  if [ -f "$old/contracts/openapi/edge.json" ]; then
    echo "-- edge OpenAPI document: $label"
    "$python" contracts/tools/openapi_diff.py "$old/contracts/openapi/edge.json" "$new/contracts/openapi/edge.json"
  else
    echo "-- no edge OpenAPI document before $label: nothing to compare"
  fi
}

# step OLD NEW: compare the contracts of two commits (NEW may be "worktree").
step() {
  local old=$1 new=$2 dir
  dir=$(mktemp -d -p "$tmp")
  extract "$old" "$dir/old"
  extract "$new" "$dir/new"
  compare "$dir/old" "$dir/new" "$(git rev-parse --short "$old") -> $( [ "$new" = worktree ] && echo "working tree" || git rev-parse --short "$new")"
}

if ! git rev-parse --verify --quiet HEAD >/dev/null; then
  echo "-- no commit yet: nothing to compare"
  exit 0
fi

if [ -n "${CONTRACTS_BASE_REF:-}" ]; then
  if ! base=$(git rev-parse --verify --quiet "$CONTRACTS_BASE_REF^{commit}"); then
    echo "CONTRACTS_BASE_REF=$CONTRACTS_BASE_REF names no commit" >&2
    exit 1
  fi
  step "$base" worktree
  exit 0
fi

range=HEAD
if [ -f contracts/published-since ]; then
  published=$(grep -v '^#' contracts/published-since | head -n 1)
  if git rev-parse --verify --quiet "$published^{commit}" >/dev/null; then
    range="$published..HEAD"
  else
    echo "-- contracts/published-since names $published, which this clone lacks (shallow?): checking the commits it has"
  fi
fi
steps=0
for commit in $(git rev-list --reverse "$range" -- "${contract_paths[@]}"); do
  if git rev-parse --verify --quiet "$commit~1" >/dev/null; then
    step "$commit~1" "$commit"
    steps=$((steps + 1))
  fi
done
if ! git diff --quiet HEAD -- "${contract_paths[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${contract_paths[@]}")" ]; then
  step HEAD worktree
  steps=$((steps + 1))
fi
if [ "$steps" -eq 0 ]; then
  echo "-- no change to the contracts since they were published: nothing to compare"
else
  echo "-- $steps change(s) to the contracts compared with what came before"
fi
