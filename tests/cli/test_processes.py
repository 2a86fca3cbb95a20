"""`tail`: the last lines of a log, whole, of those one run of the supervisor wrote."""

from __future__ import annotations

from pathlib import Path

from agora_cli.processes import tail


def test_tail_gives_whole_lines_from_the_end_back_to_where_this_run_began(tmp_path: Path) -> None:
    log = tmp_path / "tinyalpha-0.log"
    earlier = "".join(f"earlier run {number}\n" for number in range(10_000)).encode()
    log.write_bytes(earlier + b"".join(f"this run {number}\n".encode() for number in range(10_000)))

    assert tail(log, 3, since=len(earlier)) == ["this run 9997", "this run 9998", "this run 9999"]
    assert tail(log, 50_000, since=len(earlier)) == [f"this run {number}" for number in range(10_000)]
    assert len(tail(log, 15_000)) == 15_000 and tail(log, 15_000)[0] == "earlier run 5000"
    assert tail(log, 0) == [] and tail(tmp_path / "missing.log", 5) == []
