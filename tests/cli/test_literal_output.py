"""What `agora` prints is printed as it is: brackets in a path, a pattern, a service name or a
mail's subject are text, not Rich markup to interpret or choke on."""

from __future__ import annotations

from email.message import EmailMessage

from tests.cli.conftest import City


def test_an_error_quoting_a_pattern_prints_the_pattern(city: City) -> None:
    result = city.agora("chaos", "delay", "tinyalpha", "5", AGORA_CITY="Bad")

    assert result.returncode == 1
    assert result.stderr == "error: AGORA_CITY must match [a-z][a-z0-9]*, got 'Bad'\n"


def test_a_home_with_brackets_is_named_as_it_is(city: City) -> None:
    home = city.home.parent / "[bold]home"

    result = city.agora("status", AGORA_HOME=str(home))

    assert result.returncode == 1
    assert result.stderr == f"no city is running in {home}\n"


def test_a_service_name_with_brackets_is_one_line_not_a_traceback(city: City) -> None:
    (city.home / "logs").mkdir(parents=True)
    (city.home / "logs" / "tinyalpha-0.log").write_text("tinyalpha serving\n")

    result = city.agora("logs", "[/x]")

    assert result.returncode == 1
    assert result.stderr == f"error: no logs for '[/x]' in {city.home / 'logs'}\n"


def test_a_subject_with_brackets_is_listed_as_it_is(city: City) -> None:
    message = EmailMessage()
    message["From"], message["To"] = "shop@agora.local", "ada@example.com"
    message["Subject"] = "[Agora] [/weekly] digest"
    message.set_content("news")
    (city.home / "mail").mkdir(parents=True)
    (city.home / "mail" / "1.eml").write_bytes(message.as_bytes())

    result = city.agora("mail")

    assert result.returncode == 0, result.stderr
    assert "[Agora] [/weekly] digest" in result.stdout
