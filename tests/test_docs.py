"""The docs map each pattern to the test that proves it: every test and test file they name exists,
so a renamed test cannot leave a claim pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"\b(test_\w+)(\.py)?")


def test_every_test_the_docs_name_exists() -> None:
    test_files = list((REPOSITORY / "tests").rglob("test_*.py"))
    file_names = {path.stem for path in test_files}
    test_names = {name for path in test_files for name in re.findall(r"def (test_\w+)", path.read_text())}
    missing = [
        f"{doc.relative_to(REPOSITORY)}: {match.group(0)}"
        for doc in [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
        for match in NAMED.finditer(doc.read_text())
        if match.group(1) not in (file_names if match.group(2) else file_names | test_names)
    ]
    assert not missing, missing
    assert len(test_names) > 500  # the walk found the suite
