"""Resilience policies as data, one per dependency, in the spirit of Dapr's resiliency spec.

`deploy/resilience.toml` holds a `[defaults]` table and `[dependencies.<name>]` overrides; an
override names only what differs, down to single fields of a nested table:

    [defaults]
    timeout_seconds = 2.0

    [dependencies.recommendations]
    timeout_seconds = 0.15
    retry.max_attempts = 1

Unknown keys and out-of-range values are errors, so a typo fails at start-up instead of
silently meaning "default".
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from chassis.resilience import grpc_errors

FILE_VARIABLE = "AGORA_RESILIENCE_FILE"

ErrorPredicate = Callable[[BaseException], bool]


class PolicyError(ValueError):
    """The policy file says something the chassis cannot apply."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PolicyError(message)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # the first attempt included: 1 turns retries off
    backoff_base_seconds: float = 0.025
    backoff_cap_seconds: float = 0.5
    budget_ratio: float = 0.1  # retries per request of the window
    budget_min_per_second: float = 5.0  # on top, so a quiet dependency can be retried at all
    budget_window_seconds: float = 10.0

    def __post_init__(self) -> None:
        _require(self.max_attempts >= 1, "retry.max_attempts counts the first attempt, so it is at least 1")
        _require(0 < self.backoff_base_seconds <= self.backoff_cap_seconds, "need 0 < backoff base <= backoff cap")
        _require(self.budget_ratio >= 0 and self.budget_min_per_second >= 0, "a retry budget cannot be negative")
        _require(self.budget_window_seconds > 0, "retry.budget_window_seconds must be positive")


@dataclass(frozen=True)
class BreakerPolicy:
    window_size: int = 20  # the last N calls judged
    minimum_calls: int = 10  # the circuit cannot open on fewer calls than this
    failure_rate_threshold: float = 0.5  # share of failed calls in the window that opens it
    open_seconds: float = 5.0
    half_open_probes: int = 2  # concurrent probes when half-open; this many successes close it

    def __post_init__(self) -> None:
        _require(1 <= self.minimum_calls <= self.window_size, "need 1 <= breaker.minimum_calls <= window_size")
        _require(0 < self.failure_rate_threshold <= 1, "breaker.failure_rate_threshold is a share, in (0, 1]")
        _require(self.open_seconds > 0, "breaker.open_seconds must be positive")
        _require(self.half_open_probes >= 1, "breaker.half_open_probes must be at least 1")


@dataclass(frozen=True)
class BulkheadPolicy:
    max_concurrent: int = 64
    max_queued: int = 128

    def __post_init__(self) -> None:
        _require(self.max_concurrent >= 1, "bulkhead.max_concurrent must be at least 1")
        _require(self.max_queued >= 0, "bulkhead.max_queued cannot be negative")


@dataclass(frozen=True)
class Policy:
    timeout_seconds: float = 2.0  # per attempt, always shortened to what remains of the deadline
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    bulkhead: BulkheadPolicy = BulkheadPolicy()
    # Code, not data: which errors count against the circuit and which may be retried.
    is_failure: ErrorPredicate = field(default=grpc_errors.is_failure, repr=False, metadata={"code": True})
    is_retryable: ErrorPredicate = field(default=grpc_errors.is_retryable, repr=False, metadata={"code": True})

    def __post_init__(self) -> None:
        _require(self.timeout_seconds > 0, "timeout_seconds must be positive")


@dataclass(frozen=True)
class Policies:
    defaults: Policy = Policy()
    dependencies: Mapping[str, Policy] = field(default_factory=dict)

    def for_dependency(self, name: str) -> Policy:
        """The dependency's own policy, or the defaults when the file does not name it."""
        return self.dependencies.get(name, self.defaults)


def default_file() -> Path:
    """`deploy/resilience.toml` of the checkout the chassis is installed from (editable)."""
    return Path(__file__).resolve().parents[3] / "deploy" / "resilience.toml"


def load_policies(path: Path | None = None) -> Policies:
    """Reads the policy file: `path`, else `$AGORA_RESILIENCE_FILE`, else the repository's own.

    A file named explicitly must exist. Without one, a missing repository file (an installed
    chassis outside the checkout) means the built-in defaults for every dependency.
    """
    if path is None and (named := os.environ.get(FILE_VARIABLE)):
        path = Path(named)
    if path is None:
        path = default_file()
        if not path.is_file():
            return Policies()
    with path.open("rb") as file:
        return parse_policies(tomllib.load(file), source=str(path))


def parse_policies(document: Mapping[str, Any], *, source: str = "policies") -> Policies:
    """Policies from an already-parsed TOML document; every dependency merged over `defaults`."""
    unknown = set(document) - {"defaults", "dependencies"}
    _require(not unknown, f"{source}: unknown top-level tables {sorted(unknown)}")
    try:
        defaults = _overridden(Policy(), _table(document.get("defaults", {}), "defaults"), "defaults")
        dependencies = {
            name: _overridden(defaults, _table(table, f"dependencies.{name}"), f"dependencies.{name}")
            for name, table in _table(document.get("dependencies", {}), "dependencies").items()
        }
    except PolicyError as error:
        raise PolicyError(f"{source}: {error}") from None
    return Policies(defaults, dependencies)


D = TypeVar("D")


def _overridden(base: D, table: Mapping[str, Any], where: str) -> D:
    settings = {f.name for f in fields(base) if not f.metadata.get("code")}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key, value in table.items():
        _require(key in settings, f"{where}.{key} is not a setting (known: {', '.join(sorted(settings))})")
        current = getattr(base, key)
        if is_dataclass(current):
            changes[key] = _overridden(current, _table(value, f"{where}.{key}"), f"{where}.{key}")
        else:
            changes[key] = _number(value, like=current, where=f"{where}.{key}")
    try:
        return replace(base, **changes)  # type: ignore[type-var]
    except PolicyError as error:
        raise PolicyError(f"{where}: {error}") from None


def _table(value: Any, where: str) -> Mapping[str, Any]:
    _require(isinstance(value, Mapping), f"{where} must be a table")
    return value


def _number(value: Any, *, like: Any, where: str) -> int | float:
    _require(isinstance(value, int | float) and not isinstance(value, bool), f"{where} must be a number, not {value!r}")
    if isinstance(like, int):
        _require(isinstance(value, int), f"{where} must be a whole number, not {value!r}")
        return value
    return float(value)
