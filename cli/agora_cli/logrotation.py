"""The city's logs kept to a bounded size while it runs.

Every service and server appends to its own file in AGORA_HOME/logs, opened with O_APPEND, and
none of them reopens it; a city under load for hours would otherwise fill the disk (a checkout
writes about 5 kB of log lines). So a file grown past its cap is copied to `<name>.log.1`,
replacing the older copy, and truncated in place, as logrotate's `copytruncate` does: the
writer's next line lands at the start of the emptied file. What a writer appends between the
copy's last read and the truncation is lost, a window of microseconds once per cap's worth of
lines, which is the price of not having every process reopen its file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_MEGABYTES = 64.0
ROTATED_SUFFIX = ".1"
_LONGEST_LINE_BYTES = 1 << 20


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ROTATED_SUFFIX)


def rotate_if_over(path: Path, max_bytes: int) -> bool:
    """Moves the lines of `path` to its rotated copy once it holds more than `max_bytes`."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        with open(path, "rb") as source, open(rotated(path), "w+b") as copy:
            shutil.copyfileobj(source, copy, 1 << 20)
            os.truncate(path, 0)
            _drop_partial_last_line(copy)
    except FileNotFoundError:
        return False
    return True


def _drop_partial_last_line(copy: BinaryIO) -> None:
    """A line being written as the copy read its end is in the copy only in part (the writer
    extends the file a page at a time); its rest went with the truncation."""
    end = copy.seek(0, os.SEEK_END)
    start = copy.seek(max(0, end - _LONGEST_LINE_BYTES))
    last_newline = copy.read().rfind(b"\n")
    copy.truncate(start + last_newline + 1 if last_newline >= 0 else end)


def rotate_logs(directory: Path, max_bytes: int) -> list[Path]:
    """Rotates every log in `directory` over the cap; answers the ones it rotated."""
    return [path for path in sorted(directory.glob("*.log")) if rotate_if_over(path, max_bytes)]
