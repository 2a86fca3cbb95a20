from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable


class RollingCount:
    """A count of events over the last `seconds`, kept in `buckets` slices of time.

    Old slices drop off whole, so the window slides in steps of `seconds / buckets`.
    """

    def __init__(self, seconds: float, buckets: int, clock: Callable[[], float]):
        if seconds <= 0 or buckets < 1:
            raise ValueError("a rolling window needs a positive length and at least one bucket")
        self._width = seconds / buckets
        self._buckets = buckets
        self._clock = clock
        self._slices: deque[list[int]] = deque()  # [slice number, count], oldest first

    def add(self, count: int = 1) -> None:
        now = self._slice_now()
        if self._slices and self._slices[-1][0] == now:
            self._slices[-1][1] += count
        else:
            self._slices.append([now, count])

    def total(self) -> int:
        oldest_kept = self._slice_now() - self._buckets + 1
        while self._slices and self._slices[0][0] < oldest_kept:
            self._slices.popleft()
        return sum(count for _, count in self._slices)

    def clear(self) -> None:
        self._slices.clear()

    def _slice_now(self) -> int:
        return math.floor(self._clock() / self._width)
