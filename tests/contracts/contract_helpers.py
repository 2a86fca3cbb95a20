"""Paths and helpers the contract tests share (this directory is on sys.path under pytest)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "contracts" / "events"
PROTOS = REPO / "contracts" / "proto"
BUF = REPO / ".venv" / "bin" / "buf"


def run(*command: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120)


def load_schema_diff() -> ModuleType:
    """contracts/tools/schema_diff.py, which is a script rather than an installed module."""
    path = REPO / "contracts" / "tools" / "schema_diff.py"
    spec = importlib.util.spec_from_file_location("schema_diff", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
