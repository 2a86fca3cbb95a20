"""`agora up` in the foreground: ready table, then Ctrl-C stops every process it started."""

from __future__ import annotations

import signal
import subprocess

from tests.cli.conftest import AGORA, City, alive, wait_for


def test_ctrl_c_stops_services_and_servers(city: City) -> None:
    foreground = subprocess.Popen(
        [str(AGORA), "up", "--timeout", "30"], env=city.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: (city.home / "city.json").exists() and city.state()["status"] == "ready", timeout=40)
        everything = city.processes()
        assert everything[0][0] == foreground.pid, "the foreground command is the supervisor"
        foreground.send_signal(signal.SIGINT)
        stdout, stderr = foreground.communicate(timeout=40)
    finally:
        if foreground.poll() is None:
            foreground.kill()
    assert foreground.returncode == 0, stderr
    assert "tinygate" in stdout and "stopped" in stdout
    assert not [pid for pid, _ in everything if alive(pid)]
    assert not (city.home / "city.json").exists()
