import filecmp
import importlib
from pathlib import Path

import pytest
from contract_helpers import PROTOS, REPO, run

COMMITTED = REPO / "contracts" / "python" / "agora"


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"{left.name}/{name}" for name in comparison.left_only + comparison.right_only + comparison.diff_files]
    for name in comparison.common_dirs:
        found += _differences(left / name, right / name)
    return found


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    result = run("bash", "scripts/gen-protos.sh", tmp_path)
    assert result.returncode == 0, result.stderr
    assert _differences(tmp_path / "agora", COMMITTED) == []


@pytest.mark.parametrize("proto", sorted(p.relative_to(PROTOS) for p in PROTOS.rglob("*.proto")), ids=str)
def test_every_proto_has_importable_messages_stubs_and_type_hints(proto: Path) -> None:
    module = ".".join(proto.with_suffix("").parts)
    importlib.import_module(f"{module}_pb2")
    importlib.import_module(f"{module}_pb2_grpc")
    assert (COMMITTED.parent / proto.parent / f"{proto.stem}_pb2.pyi").is_file()


def test_protos_pass_buf_lint() -> None:
    result = run(REPO / ".venv/bin/buf", "lint", PROTOS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_money_is_integer_minor_units() -> None:
    from agora.common.v1 import common_pb2

    field = common_pb2.Money.DESCRIPTOR.fields_by_name["amount"]
    assert field.type == field.TYPE_INT64
