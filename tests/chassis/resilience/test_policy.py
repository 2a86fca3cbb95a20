import tomllib
from pathlib import Path

import pytest

from chassis.resilience import (
    BreakerPolicy,
    BulkheadPolicy,
    Policies,
    Policy,
    PolicyError,
    RetryPolicy,
    load_policies,
    parse_policies,
)
from chassis.resilience.grpc_errors import is_failure, is_retryable
from chassis.resilience.policy import default_file

REPOSITORY = Path(__file__).resolve().parents[3]


def test_the_built_in_defaults_are_the_documented_ones() -> None:
    policy = Policy()
    assert policy.timeout_seconds == 2.0
    assert policy.retry == RetryPolicy(
        max_attempts=3,
        backoff_base_seconds=0.025,
        backoff_cap_seconds=0.5,
        budget_ratio=0.1,
        budget_min_per_second=5.0,
        budget_window_seconds=10.0,
    )
    assert policy.breaker == BreakerPolicy(
        window_size=20, minimum_calls=10, failure_rate_threshold=0.5, open_seconds=5.0, half_open_probes=2
    )
    assert policy.bulkhead == BulkheadPolicy(max_concurrent=64, max_queued=128)
    assert policy.is_failure is is_failure and policy.is_retryable is is_retryable


def test_a_dependency_overrides_only_what_it_names_and_inherits_the_rest_from_defaults() -> None:
    policies = parse_policies(
        {
            "defaults": {"timeout_seconds": 1, "retry": {"max_attempts": 4}, "breaker": {"open_seconds": 9}},
            "dependencies": {"slow": {"timeout_seconds": 3.5, "retry": {"backoff_cap_seconds": 1.0}}},
        }
    )
    slow = policies.for_dependency("slow")
    assert slow.timeout_seconds == 3.5
    assert slow.retry == RetryPolicy(max_attempts=4, backoff_cap_seconds=1.0)
    assert slow.breaker.open_seconds == 9.0
    assert policies.for_dependency("unnamed") == policies.defaults
    assert policies.defaults.timeout_seconds == 1.0 and isinstance(policies.defaults.timeout_seconds, float)


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"defaults": {"timout_seconds": 1.0}}, "defaults.timout_seconds is not a setting"),
        ({"dependencies": {"cart": {"retry": {"attempts": 2}}}}, "dependencies.cart.retry.attempts is not a setting"),
        ({"dependencies": {"cart": {"is_failure": 1}}}, "is_failure is not a setting"),
        ({"defaults": {"retry": {"max_attempts": 2.5}}}, "must be a whole number"),
        ({"defaults": {"timeout_seconds": "fast"}}, "must be a number"),
        ({"defaults": {"timeout_seconds": True}}, "must be a number"),
        ({"defaults": {"retry": 3}}, "defaults.retry must be a table"),
        ({"defaults": {"retry": {"max_attempts": 0}}}, "at least 1"),
        ({"defaults": {"timeout_seconds": 0}}, "must be positive"),
        ({"defaults": {"breaker": {"minimum_calls": 30}}}, "minimum_calls <= window_size"),
        ({"defaults": {"breaker": {"failure_rate_threshold": 1.5}}}, "in (0, 1]"),
        ({"defaults": {"retry": {"backoff_base_seconds": 2.0}}}, "base <= backoff cap"),
        ({"defaults": {"bulkhead": {"max_queued": -1}}}, "cannot be negative"),
        ({"dependency": {}}, "unknown top-level"),
    ],
)
def test_a_mistake_in_the_file_fails_loudly_naming_the_setting(document: dict, complaint: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PolicyError) as raised:
        parse_policies(document)
    assert complaint in str(raised.value)


def test_the_repository_file_is_found_from_the_chassis_checkout() -> None:
    assert default_file() == REPOSITORY / "deploy" / "resilience.toml"


def test_the_repository_file_names_every_grpc_service_and_only_those() -> None:
    topology = tomllib.loads((REPOSITORY / "deploy" / "topology.toml").read_text())["services"]
    policies = load_policies(default_file())
    called = {name for declared in topology.values() for name in declared.get("calls", [])}
    grpc_services = {name for name, declared in topology.items() if declared.get("grpc")}
    assert called <= grpc_services
    assert set(policies.dependencies) == grpc_services


def test_recommendations_answer_fast_or_not_at_all() -> None:
    recommendations = load_policies(default_file()).for_dependency("recommendations")
    assert recommendations.timeout_seconds == 0.15
    assert recommendations.retry.max_attempts == 1


def test_the_environment_can_name_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "resilience.toml"
    other.write_text("[defaults]\ntimeout_seconds = 0.75\n[dependencies.cart.bulkhead]\nmax_concurrent = 3\n")
    monkeypatch.setenv("AGORA_RESILIENCE_FILE", str(other))
    policies = load_policies()
    assert policies.defaults.timeout_seconds == 0.75
    assert policies.for_dependency("cart").bulkhead == BulkheadPolicy(max_concurrent=3)


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_RESILIENCE_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError):
        load_policies()


def test_without_any_file_every_dependency_gets_the_built_in_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGORA_RESILIENCE_FILE", raising=False)
    monkeypatch.setattr("chassis.resilience.policy.default_file", lambda: tmp_path / "absent.toml")
    assert load_policies() == Policies()
