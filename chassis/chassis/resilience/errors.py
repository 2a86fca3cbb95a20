"""Errors the resilience mechanisms raise on their own, before or instead of calling a dependency.

All of them mean "we did not (or no longer) ask the dependency", so none counts as the
dependency's failure and none is retried.
"""

from __future__ import annotations


class ResilienceError(Exception):
    """Base of every refusal the guard makes by itself."""


class DeadlineExceeded(ResilienceError, TimeoutError):
    """The caller's deadline has passed: answering now would be answering nobody."""


class BreakerOpen(ResilienceError):
    """The dependency's circuit is open (or its half-open probes are all taken)."""


class BulkheadFull(ResilienceError):
    """The dependency already has as many calls running and waiting as it may."""
