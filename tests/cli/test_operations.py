"""Day-to-day operations on a running city: logs, and cleaning up after a supervisor that died."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.cli.conftest import AGORA, City, alive, wait_for


def test_logs_show_one_service_or_name_what_is_missing(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0

    alpha = city.agora("logs", "tinyalpha")
    assert alpha.returncode == 0 and "tinyalpha serving on" in alpha.stdout
    assert "tinybeta" not in alpha.stdout

    missing = city.agora("logs", "nosuch")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "nosuch" in missing.stderr


def test_logs_follow_prints_lines_of_a_restarted_instance(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    follower = subprocess.Popen(
        [str(AGORA), "logs", "tinyalpha", "-f", "-n", "1"], env=city.env, stdout=subprocess.PIPE, text=True
    )
    try:
        # Its last line shown, it follows: a restart before that (a slow start on a busy machine)
        # would be behind the point it follows from.
        assert follower.stdout.readline()
        assert city.agora("restart", "tinyalpha", "--timeout", "30").returncode == 0
        # The old instance may log first: a readiness probe that left before reading its whole
        # answer makes the stand-in service print a traceback.
        shown: list[str] = []
        for _ in range(200):
            shown.append(follower.stdout.readline())
            if "tinyalpha serving on" in shown[-1]:
                break
        assert "tinyalpha serving on" in shown[-1], shown
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)


def test_down_after_the_supervisor_was_killed_leaves_no_process(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    everything = city.processes()
    supervisor_pid = everything[0][0]

    os.kill(supervisor_pid, signal.SIGKILL)
    assert wait_for(lambda: not alive(supervisor_pid), timeout=10)
    orphans = [pid for pid, _ in everything[1:] if alive(pid)]
    assert len(orphans) == 3 + 4, "services and servers outlive a killed supervisor until `down`"
    for command in (
        ("status",), ("restart", "tinyalpha"), ("chaos", "kill", "tinyalpha"), ("keys", "rotate"), ("replay", "analytics"),
    ):
        told = city.agora(*command)
        assert told.returncode == 1, command
        assert "supervisor" in told.stderr and "is gone, but 7 of its processes still run" in told.stderr, command
        assert "`agora down` stops them" in told.stderr and told.stderr.count("\n") == 1, command

    result = city.agora("down", timeout=60)

    assert result.returncode == 0, result.stderr
    assert not [pid for pid, _ in everything if alive(pid)]
    assert not (city.home / "city.json").exists()


def test_up_after_the_supervisor_was_killed_clears_what_it_left(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    everything = city.processes()
    os.kill(everything[0][0], signal.SIGKILL)

    again = city.agora("up", "--detach", "--timeout", "30")

    assert again.returncode == 0, again.stderr
    assert not [pid for pid, _ in everything if alive(pid)]
    assert all(alive(pid) for pid, _ in city.processes())


def test_dlq_without_a_running_city_is_one_line_not_a_traceback(city: City) -> None:
    for command in (("dlq", "list"), ("dlq", "replay", "some-ref")):
        result = city.agora(*command)

        assert result.returncode == 1, command
        assert result.stderr.strip() == f"error: no city is running in {city.home}"


def test_logs_print_as_many_whole_lines_as_asked_for(city: City) -> None:
    log = city.home / "logs" / "tinyalpha-0.log"
    log.parent.mkdir(parents=True)
    lines = [f"line {number} {'x' * 40}" for number in range(20_000)]  # about 1 MB
    log.write_text("\n".join(lines) + "\n")

    assert city.agora("logs", "tinyalpha", "-n", "5000").stdout.splitlines() == lines[-5000:]
    assert city.agora("logs", "tinyalpha", "-n", "3").stdout.splitlines() == lines[-3:]
    assert city.agora("logs", "tinyalpha", "-n", "0").stdout == ""


def test_logs_of_a_home_where_no_city_ran_say_so(city: City) -> None:
    for command in (("logs",), ("logs", "-f")):
        result = city.agora(*command, timeout=10)

        assert result.returncode == 1, command
        assert result.stderr == f"error: no logs in {city.home / 'logs'}: no city has run in this home\n"
