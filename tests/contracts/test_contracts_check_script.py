"""scripts/check-contracts.sh, run in a throwaway git repository holding a copy of the contracts."""

import json
import shutil
from pathlib import Path

import pytest
from contract_helpers import REPO, run

CATALOG = Path("contracts/proto/agora/catalog/v1/catalog.proto")
PLACED = Path("contracts/events/orders/OrderPlaced.v1.json")
EDGE = Path("contracts/openapi/edge.json")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit of the current contracts and the scripts that check them."""
    for part in [
        "scripts/gen-protos.sh",
        "scripts/check-contracts.sh",
        "contracts/proto",
        "contracts/events",
        "contracts/openapi",
        "contracts/python",
        "contracts/tools",
    ]:
        source, target = REPO / part, tmp_path / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    (tmp_path / ".gitignore").write_text(".venv\n__pycache__/\n")
    _git(tmp_path, "init", "--quiet")
    _commit(tmp_path, "contracts")
    return tmp_path


def _git(repo: Path, *args: str) -> None:
    result = run("git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args, cwd=repo)
    assert result.returncode == 0, result.stderr


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", message)


def _check(repo: Path) -> tuple[int, str]:
    result = run("bash", "scripts/check-contracts.sh", cwd=repo)
    return result.returncode, result.stdout + result.stderr


def _edit(repo: Path, path: Path, old: str, new: str) -> None:
    text = (repo / path).read_text()
    assert old in text
    (repo / path).write_text(text.replace(old, new, 1))


def _regenerate(repo: Path) -> None:
    assert run("bash", "scripts/gen-protos.sh", cwd=repo).returncode == 0


def _second_commit(repo: Path) -> None:
    (repo / "README").write_text("a base commit to compare with\n")
    _commit(repo, "base")


def test_first_commit_has_nothing_to_compare_and_passes(repo: Path) -> None:
    code, output = _check(repo)
    assert code == 0, output
    assert "nothing to compare" in output


def test_an_added_field_and_event_property_pass(repo: Path) -> None:
    _second_commit(repo)
    _edit(repo, CATALOG, "  string image_url = 7;\n", "  string image_url = 7;\n  string brand = 8;\n")
    _regenerate(repo)
    schema = json.loads((repo / PLACED).read_text())
    schema["properties"]["coupon"] = {"type": "string"}
    (repo / PLACED).write_text(json.dumps(schema))
    edge = json.loads((repo / EDGE).read_text())
    edge["paths"]["/api/v1/brands"] = {"get": {"responses": {"200": {"description": "the brands"}}}}
    (repo / EDGE).write_text(json.dumps(edge))
    code, output = _check(repo)
    assert code == 0, output


def test_a_removed_proto_field_fails(repo: Path) -> None:
    _second_commit(repo)
    _edit(repo, CATALOG, "  string image_url = 7;\n", "")
    _regenerate(repo)
    code, output = _check(repo)
    assert code != 0
    assert "image_url" in output


def test_a_removed_event_property_fails(repo: Path) -> None:
    _second_commit(repo)
    schema = json.loads((repo / PLACED).read_text())
    del schema["properties"]["payment_token"]
    schema["required"].remove("payment_token")
    (repo / PLACED).write_text(json.dumps(schema))
    code, output = _check(repo)
    assert code != 0
    assert "orders/OrderPlaced.v1.json: data.payment_token" in output


def test_stale_generated_code_fails(repo: Path) -> None:
    _edit(repo, CATALOG, "  string image_url = 7;\n", "  string image_url = 7;\n  string brand = 8;\n")
    code, output = _check(repo)
    assert code != 0
    assert "stale" in output


def test_a_removed_edge_operation_fails(repo: Path) -> None:
    _second_commit(repo)
    edge = json.loads((repo / EDGE).read_text())
    del edge["paths"]["/api/v1/categories"]
    (repo / EDGE).write_text(json.dumps(edge))
    code, output = _check(repo)
    assert code != 0
    assert "breaking: GET /api/v1/categories: operation removed" in output


def test_an_edge_document_new_since_its_parent_has_nothing_to_compare(repo: Path) -> None:
    _git(repo, "rm", "--quiet", "-r", "contracts/openapi")
    _git(repo, "commit", "--quiet", "-m", "no edge document")
    _git(repo, "checkout", "--quiet", "HEAD~1", "--", "contracts/openapi")
    _commit(repo, "the edge document")
    # Only the document's arrival is checked: its removal before is history (published-since).
    (repo / "contracts/published-since").write_text(_head(repo, "HEAD~1") + "\n")
    code, output = _check(repo)
    assert code == 0, output
    assert "no edge OpenAPI document before" in output
    assert "nothing to compare" in output


def test_a_break_in_an_earlier_commit_of_a_push_fails_though_the_last_commit_is_clean(repo: Path) -> None:
    _second_commit(repo)
    _edit(repo, CATALOG, "  string image_url = 7;\n", "")
    _regenerate(repo)
    _commit(repo, "drop image_url")
    (repo / "README").write_text("a later commit that touches no contract\n")
    _commit(repo, "docs")
    code, output = _check(repo)
    assert code != 0
    assert "image_url" in output


def test_a_break_before_the_published_commit_is_history(repo: Path) -> None:
    _second_commit(repo)
    _edit(repo, CATALOG, "  string image_url = 7;\n", "")
    _regenerate(repo)
    _commit(repo, "drop image_url before the contracts were published")
    (repo / "contracts/published-since").write_text(f"# contracts only grow after this commit\n{_head(repo)}\n")
    _commit(repo, "publish")
    code, output = _check(repo)
    assert code == 0, output
    assert "nothing to compare" in output


def test_a_base_ref_compares_the_working_tree_with_it_alone(repo: Path) -> None:
    _second_commit(repo)
    _edit(repo, CATALOG, "  string image_url = 7;\n", "")
    _regenerate(repo)
    _commit(repo, "drop image_url")
    result = run("bash", "scripts/check-contracts.sh", cwd=repo, env_overrides={"CONTRACTS_BASE_REF": "HEAD"})
    assert result.returncode == 0, result.stdout + result.stderr
    result = run("bash", "scripts/check-contracts.sh", cwd=repo, env_overrides={"CONTRACTS_BASE_REF": "HEAD~1"})
    assert result.returncode != 0
    assert "image_url" in result.stdout + result.stderr


def _head(repo: Path, ref: str = "HEAD") -> str:
    result = run("git", "rev-parse", ref, cwd=repo)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
