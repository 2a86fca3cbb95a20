#!/usr/bin/env bash
# Installs everything Agora needs into ./.venv: every package editable, pinned by constraints.txt.
# Safe to run again; it only does work when something changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check uv
fi

packages=(-e chassis -e contracts -e cli)
for service in services/*/; do
  packages+=(-e "${service%/}")
done

stamp=.venv/.agora-installed
inputs=$( (echo compat-editables compiled; cat constraints.txt requirements-dev.txt chassis/pyproject.toml contracts/pyproject.toml cli/pyproject.toml services/*/pyproject.toml) | sha1sum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$inputs" ]; then
  # compat editables put each project folder on sys.path, so the package inside it (chassis/chassis)
  # wins over the same-named folder at the repo root, whatever the working directory is.
  .venv/bin/uv pip install --quiet --python .venv/bin/python -c constraints.txt -r requirements-dev.txt \
    --config-settings editable_mode=compat --compile-bytecode --reinstall-package agora-chassis "${packages[@]}"
  echo "$inputs" > "$stamp"
fi
