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


def test_a_test_the_docs_name_with_its_file_is_in_that_file() -> None:
    """`tests/x/test_a.py::test_b` (or `test_a.py::test_b`, a file name found once under tests/)
    and the `::test_c` that follow it in the same table cell or sentence."""
    by_name: dict[str, list[Path]] = {}
    for path in (REPOSITORY / "tests").rglob("test_*.py"):
        by_name.setdefault(path.name, []).append(path)
    misplaced, checked = [], 0
    for doc in [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]:
        for sentence in re.split(r"(?<=[|;.])\s", doc.read_text()):
            file: Path | None = None
            for named, test in re.findall(r"([\w/]*test_\w+\.py)?::(test_\w+)", sentence):
                if named:
                    found = [REPOSITORY / named] if "/" in named else by_name.get(named, [])
                    if len(found) != 1 or not found[0].is_file():
                        misplaced.append(f"{doc.name}: {named} is not one test file")
                        file = None
                        continue
                    file = found[0]
                if file is None:
                    misplaced.append(f"{doc.name}: ::{test} follows no test file in its sentence")
                    continue
                checked += 1
                if f"def {test}(" not in file.read_text():
                    misplaced.append(f"{doc.name}: {file.relative_to(REPOSITORY)}::{test}")
    assert not misplaced, misplaced
    assert checked > 50  # the docs name tests with their files
