"""Numbers `agora` cannot honour are usage errors (exit 2), refused before anything is done:
a zero that would read as "forever" or "the default", a negative, an infinity."""

from __future__ import annotations

import re
from pathlib import Path

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


@pytest.mark.parametrize(
    "option",
    [("--namespace", "BAD_NS"), ("--namespace", "a" * 64), ("--tag", "x y"), ("--image-repository", "Agora Images")],
    ids=" ".join,
)
def test_manifests_refuse_what_kubernetes_would_before_writing_anything(
    city: City, tmp_path: Path, option: tuple[str, str]
) -> None:
    out = tmp_path / "k8s"
    result = city.agora("manifests", "--out", str(out), *option)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and option[1] in result.stderr
    assert not out.exists()


def test_manifests_take_a_registry_with_a_port_and_a_namespace_of_lower_case_and_dashes(city: City, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = city.agora("manifests", "--out", str(out), "--namespace", "shop-2", "--image-repository",
                        "registry.example.com:5000/team/agora", "--tag", "v1.2.3_rc-1")

    assert result.returncode == 0, result.stderr
    written = "".join(path.read_text() for path in out.glob("*.yaml"))
    assert "namespace: shop-2" in written
    assert re.search(r"image: registry\.example\.com:5000/team/agora/\w+:v1\.2\.3_rc-1", written)


def test_a_home_that_is_a_file_is_one_line_not_a_traceback(city: City, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a directory")
    for command in (("status",), ("up", "--detach"), ("down",), ("chaos", "delay", "tinyalpha", "10")):
        result = city.agora(*command, AGORA_HOME=str(home))

        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr, (command, result.stderr)
