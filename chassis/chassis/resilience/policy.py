"""Resilience policies as data, one per dependency, in the spirit of Dapr's resiliency spec.

`deploy/resilience.toml` holds a `[defaults]` table and `[dependencies.<name>]` overrides;
an override names only what differs, down to single fields of a nested table:

    [defaults]
    timeout_seconds = 1.0

    [dependencies.recommendations]
    timeout_seconds = 0.15
    retry.max_attempts = 1

Unknown keys are errors, so a typo fails at start-up instead of silently meaning "default".
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The repository's file, when the chassis runs from a checkout (editable install).
REPOSITORY_FILE = Path(__file__).resolve().parents[3] / "deploy" / "resilience.toml"
FILE_VARIABLE = "AGORA_RESILIENCE_FILE"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrySettings(_Settings):
    max_attempts: int = Field(default=3, ge=1, description="first attempt included; 1 turns retries off")
    backoff_base_seconds: float = Field(default=0.025, gt=0)
    backoff_cap_seconds: float = Field(default=0.25, gt=0)
    budget_ratio: float = Field(default=0.1, ge=0, description="retries allowed per request of the window")
    budget_min_per_second: float = Field(default=1.0, ge=0)
    budget_window_seconds: float = Field(default=10.0, gt=0)


class BreakerSettings(_Settings):
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    minimum_calls: int = Field(default=20, ge=1)
    window_seconds: float = Field(default=10.0, gt=0)
    open_seconds: float = Field(default=5.0, gt=0)
    half_open_probes: int = Field(default=3, ge=1)


class BulkheadSettings(_Settings):
    max_concurrent: int = Field(default=64, ge=1)
    max_queued: int = Field(default=128, ge=0)


class Policy(_Settings):
    timeout_seconds: float = Field(default=1.0, gt=0, description="per attempt, shortened to the caller's deadline")
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    bulkhead: BulkheadSettings = BulkheadSettings()


class Policies(_Settings):
    defaults: Policy = Policy()
    dependencies: dict[str, Policy] = {}

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Each dependency's table is an override of `defaults`, merged field by field."""
        if not isinstance(data, Mapping):
            return data
        defaults = data.get("defaults", {})
        defaults = defaults.model_dump() if isinstance(defaults, BaseModel) else defaults
        overrides = data.get("dependencies", {})
        return {
            **data,
            "dependencies": {
                name: override if isinstance(override, BaseModel) else _merged(defaults, override)
                for name, override in overrides.items()
            },
        }

    def for_dependency(self, name: str) -> Policy:
        return self.dependencies.get(name, self.defaults)


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            merged[key] = _merged(base[key], value)
        else:
            merged[key] = value
    return merged


def load_policies(source: Path | Mapping[str, Any] | None = None) -> Policies:
    """Policies from a TOML file or an already-parsed mapping.

    Without a source: the file named by `AGORA_RESILIENCE_FILE`, else the repository's
    `deploy/resilience.toml` when present, else the built-in defaults for every dependency.
    """
    if source is None:
        named = os.environ.get(FILE_VARIABLE)
        source = Path(named) if named else REPOSITORY_FILE if REPOSITORY_FILE.is_file() else {}
    if isinstance(source, Path):
        with source.open("rb") as file:
            source = tomllib.load(file)
    return Policies.model_validate(source)
