import tomllib
from pathlib import Path

import pytest
from chassis.resilience import Policies, Policy, load_policies
from chassis.resilience.policy import FILE_VARIABLE, REPOSITORY_FILE
from pydantic import ValidationError

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def test_without_any_declaration_every_dependency_gets_the_defaults() -> None:
    policies = load_policies({})
    assert policies.for_dependency("catalog") == Policy()
    assert Policy().timeout_seconds > 0 and Policy().retry.budget_ratio == 0.1


def test_an_override_names_only_what_differs_and_inherits_the_rest() -> None:
    policies = load_policies(
        {
            "defaults": {"timeout_seconds": 2.0, "retry": {"max_attempts": 4, "backoff_cap_seconds": 1.0}},
            "dependencies": {"recommendations": {"timeout_seconds": 0.15, "retry": {"max_attempts": 1}}},
        }
    )
    recommendations = policies.for_dependency("recommendations")
    assert recommendations.timeout_seconds == 0.15
    assert recommendations.retry.max_attempts == 1
    assert recommendations.retry.backoff_cap_seconds == 1.0, "inherited from [defaults], not the built-in"
    assert policies.for_dependency("catalog").retry.max_attempts == 4


@pytest.mark.parametrize(
    "declaration",
    [
        {"defaults": {"timeout": 1.0}},
        {"dependencies": {"cart": {"retry": {"max_attempt": 2}}}},
        {"dependencies": {"cart": {"timeout_seconds": 0}}},
        {"dependencies": {"cart": {"breaker": {"failure_rate_threshold": 1.5}}}},
    ],
)
def test_a_mistyped_or_impossible_setting_is_refused(declaration: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        load_policies(declaration)


def test_the_file_named_in_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "resilience.toml"
    file.write_text("[dependencies.cart]\ntimeout_seconds = 0.05\n")
    monkeypatch.setenv(FILE_VARIABLE, str(file))
    assert load_policies().for_dependency("cart").timeout_seconds == 0.05


def test_without_a_named_file_the_repository_declaration_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FILE_VARIABLE, raising=False)
    assert REPOSITORY_FILE == DEPLOY / "resilience.toml"
    assert load_policies() == load_policies(REPOSITORY_FILE)


def test_the_repository_declares_a_policy_for_every_dependency_in_the_topology() -> None:
    topology = tomllib.loads((DEPLOY / "topology.toml").read_text())
    called = {target for service in topology["services"].values() for target in service.get("calls", [])}
    policies = load_policies(DEPLOY / "resilience.toml")
    assert called <= set(policies.dependencies)
    assert set(policies.dependencies) <= set(topology["services"]), "a policy for a service that does not exist"


def test_recommendations_are_given_a_tight_timeout_and_no_retries() -> None:
    recommendations = load_policies(DEPLOY / "resilience.toml").for_dependency("recommendations")
    assert recommendations.timeout_seconds <= 0.15
    assert recommendations.retry.max_attempts == 1


def test_policies_are_immutable() -> None:
    policies = Policies()
    with pytest.raises(ValidationError):
        policies.defaults.timeout_seconds = 5.0  # type: ignore[misc]
