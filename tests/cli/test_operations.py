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
        [str(AGORA), "logs", "tinyalpha", "-f", "-n", "0"], env=city.env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert city.agora("restart", "tinyalpha", "--timeout", "30").returncode == 0
        assert "tinyalpha serving on" in follower.stdout.readline()
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
    assert city.agora("status").returncode == 1

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
