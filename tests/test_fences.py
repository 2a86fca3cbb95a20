"""The service fences: services never import each other, the chassis imports no service.

The import-linter contracts are generated from the services present in `services/`, so a new
service is fenced the moment it exists.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def services(root: Path = ROOT) -> list[str]:
    return sorted(path.parent.name for path in root.glob("services/*/pyproject.toml"))


def contracts(names: list[str]) -> str:
    listed = "\n    ".join(names)
    return f"""[importlinter]
root_packages =
    chassis
    agora_cli
    {listed}
include_external_packages = False

[importlinter:contract:services-are-independent]
name = Services never import each other
type = independence
modules =
    {listed}

[importlinter:contract:chassis-holds-no-service]
name = The chassis imports no service and not the CLI
type = forbidden
source_modules = chassis
forbidden_modules =
    agora_cli
    {listed}

[importlinter:contract:services-do-not-import-the-cli]
name = Services do not import the CLI
type = forbidden
source_modules =
    {listed}
forbidden_modules = agora_cli
"""


def lint(config: Path, *, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if extra_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": f"{extra_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(config), "--no-cache"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def test_the_fences_hold(tmp_path: Path) -> None:
    config = tmp_path / ".importlinter"
    config.write_text(contracts(services()))
    result = lint(config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_service_importing_another_breaks_the_build(tmp_path: Path) -> None:
    """The fence can fail: two throwaway services, one importing the other."""
    for name, body in (("fence_a", "import fence_b.core\n"), ("fence_b", "")):
        package = tmp_path / "pkgs" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "core.py").write_text(body)
    config = tmp_path / ".importlinter"
    config.write_text(contracts(["fence_a", "fence_b"]))
    result = lint(config, extra_path=tmp_path / "pkgs")
    assert result.returncode != 0
    assert "fence_a.core -> fence_b.core" in result.stdout
