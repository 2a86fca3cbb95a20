#!/usr/bin/env bash
# Generates the Python code for every .proto under contracts/proto into contracts/python
# (or into the directory given as the first argument, which check-contracts.sh uses to
# compare). The generated code is committed, so a fork imports it without a build step.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-contracts/python}
proto_root=contracts/proto
python=.venv/bin/python

mkdir -p "$out"
rm -rf "$out/agora"
mapfile -t protos < <(cd "$proto_root" && find agora -name '*.proto' | LC_ALL=C sort)
well_known=$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')

"$python" -m grpc_tools.protoc -I "$proto_root" -I "$well_known" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]/#/$proto_root/}"

# Every directory on the way to a generated module is a regular package.
find "$out/agora" -type d -exec touch {}/__init__.py \;
