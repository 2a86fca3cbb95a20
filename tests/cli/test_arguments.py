"""Numbers `agora` cannot honour are usage errors (exit 2), refused before anything is done:
a zero that would read as "forever" or "the default", a negative, an infinity."""

from __future__ import annotations

import pytest

from tests.cli.conftest import City


@pytest.mark.parametrize(
    "command",
    [
        ("chaos", "delay", "tinyalpha", "5", "--for", "0"),
        ("chaos", "delay", "tinyalpha", "5", "--for", "-1"),
        ("chaos", "fail", "tinyalpha", "0.5", "--for", "0"),
        ("chaos", "fail", "tinyalpha", "0.5", "--for", "inf"),
        ("chaos", "delay", "tinyalpha", "inf"),
        ("chaos", "delay", "tinyalpha", "nan"),
        ("chaos", "delay", "tinyalpha", "--", "-5"),
        ("up", "--detach", "--timeout", "-5"),
        ("up", "--detach", "--timeout", "0"),
        ("restart", "tinyalpha", "--timeout", "-1"),
        ("chaos", "start", "nats", "--timeout", "0"),
        ("logs", "-n", "-1"),
        ("replay", "analytics", "--timeout", "0"),
        ("replay", "analytics", "--timeout", "inf"),
        ("dlq", "replay", "some-ref", "--consumer", "orders"),
        ("dashboard", "--interval", "0"),
        ("dashboard", "--interval", "-1"),
        ("dashboard", "--interval", "inf"),
        ("dashboard", "--interval", "nan"),
    ],
    ids=" ".join,
)
def test_a_number_it_cannot_honour_is_a_usage_error(city: City, command: tuple[str, ...]) -> None:
    result = city.agora(*command)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (city.home / "chaos").exists(), "a fault was written"
    assert not (city.home / "city.json").exists(), "a city was started"


def test_clearing_the_faults_of_an_unknown_service_says_it_is_unknown(city: City) -> None:
    result = city.agora("chaos", "clear", "nosuch")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no service 'nosuch'" in result.stderr
