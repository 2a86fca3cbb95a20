"""Paths and helpers the contract tests share (this directory is on sys.path under pytest)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "contracts" / "events"
PROTOS = REPO / "contracts" / "proto"
BUF = REPO / ".venv" / "bin" / "buf"
TOOLS = REPO / "contracts" / "tools"
EDGE_OPENAPI = REPO / "contracts" / "openapi" / "edge.json"


def run(
    *command: str | Path, cwd: Path = REPO, env_overrides: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_overrides or {})}
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def load_tool(name: str) -> ModuleType:
    """A script of contracts/tools (`schema_diff`, ...), which is not an installed module. The
    directory goes on sys.path, as when a script runs, since the scripts import one another."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module(name)
