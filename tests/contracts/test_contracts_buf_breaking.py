from pathlib import Path

from contract_helpers import BUF, run

ORDER = """syntax = "proto3";
package agora.demo.v1;
message Order {{
  string order_id = 1;
{extra}}}
"""


def _module(root: Path, extra: str) -> Path:
    (root / "agora/demo/v1").mkdir(parents=True)
    (root / "buf.yaml").write_text("version: v2\nbreaking:\n  use:\n    - FILE\n")
    (root / "agora/demo/v1/demo.proto").write_text(ORDER.format(extra=extra))
    return root


def test_buf_breaking_catches_a_removed_field(tmp_path: Path) -> None:
    old = _module(tmp_path / "old", "  string status = 2;\n")
    new = _module(tmp_path / "new", "")
    result = run(BUF, "breaking", new, "--against", old)
    assert result.returncode != 0
    assert "status" in result.stdout


def test_buf_breaking_passes_an_added_field(tmp_path: Path) -> None:
    old = _module(tmp_path / "old", "")
    new = _module(tmp_path / "new", "  string status = 2;\n")
    result = run(BUF, "breaking", new, "--against", old)
    assert result.returncode == 0, result.stdout + result.stderr
