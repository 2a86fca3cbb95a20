"""The city's logs stay under their cap while it runs (`agora_cli/logrotation.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agora_cli.logrotation import rotate_if_over, rotate_logs, rotated
from tests.cli.conftest import City, wait_for

# A writer as the city's processes are: its own O_APPEND descriptor, never reopened.
_WRITER = """
import os, sys
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for number in range(int(sys.argv[2])):
    os.write(log, b"line %08d %s\\n" % (number, b"x" * 100))
"""


def _numbers(path: Path) -> list[int]:
    text = path.read_bytes()
    assert b"\0" not in text, "a writer kept its old offset and left a hole"
    lines = text.decode().splitlines()
    assert all(line.startswith("line ") and line.endswith("x" * 100) for line in lines), "a torn line"
    return [int(line.split()[1]) for line in lines]


def test_a_log_over_its_cap_moves_to_its_copy_and_its_writer_goes_on_at_the_start(tmp_path: Path) -> None:
    log = tmp_path / "catalog.log"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(log), "200000"])
    rotations = 0
    try:
        while writer.poll() is None:
            rotations += rotate_if_over(log, 256 * 1024)
    finally:
        writer.wait(timeout=60)

    assert rotations >= 3
    copied, current = _numbers(rotated(log)), _numbers(log)
    assert copied == list(range(copied[0], copied[-1] + 1)), "the copy holds what was written, in order"
    assert current == list(range(current[0], 200000)) if current else copied[-1] == 199999
    assert not current or current[0] > copied[-1]
    assert log.stat().st_size < 200000 * 114 / 3


def test_only_logs_over_the_cap_are_rotated(tmp_path: Path) -> None:
    (tmp_path / "small.log").write_text("a line\n")
    (tmp_path / "large.log").write_text("a line\n" * 1000)
    (tmp_path / "large.log.1").write_text("the older copy\n")

    assert rotate_logs(tmp_path, 1024) == [tmp_path / "large.log"]

    assert (tmp_path / "small.log").read_text() == "a line\n"
    assert (tmp_path / "large.log").read_text() == ""
    assert (tmp_path / "large.log.1").read_text() == "a line\n" * 1000
    assert not rotate_if_over(tmp_path / "gone.log", 1024)


def test_the_supervisor_rotates_a_services_log_and_agora_logs_follows_it(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30", AGORA_LOG_MAX_MB="0.01").returncode == 0
    log = city.home / "logs" / "tinyalpha-0.log"
    with open(log, "a") as appended:
        appended.write("an old line\n" * 2000)

    assert wait_for(lambda: rotated(log).exists() and log.stat().st_size < 10 * 1024, timeout=20)
    assert "an old line" in rotated(log).read_text()

    assert city.agora("restart", "tinyalpha", "--timeout", "30").returncode == 0
    shown = city.agora("logs", "tinyalpha", "-n", "100")
    assert "tinyalpha serving on" in shown.stdout and "an old line" not in shown.stdout


def test_a_cap_that_is_not_a_positive_number_is_refused(city: City) -> None:
    for cap in ("0", "-1", "lots", "inf"):
        result = city.agora("up", "--detach", AGORA_LOG_MAX_MB=cap)
        assert result.returncode == 1 and "AGORA_LOG_MAX_MB must be a positive number" in result.stderr, cap
