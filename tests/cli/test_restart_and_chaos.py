"""`agora restart` and `agora chaos`: operator-made failures, and the faults the chassis obeys."""

from __future__ import annotations

import json
import subprocess
import time

import psutil

from chassis.chaos import ChaosSwitch
from tests.cli.conftest import City, alive


def test_restart_is_rolling_each_new_instance_ready_before_the_old_one_stops(city: City) -> None:
    events = city.home.parent / "events"
    city.env["TINY_EVENTS"] = str(events)
    assert city.agora("up", "--detach", "--replicas", "tinyalpha=2", "--timeout", "30").returncode == 0
    before = {entry["instance"]: entry["pid"] for entry in city.state()["services"] if entry["name"] == "tinyalpha"}
    assert len(before) == 2

    result = city.agora("restart", "tinyalpha", "--timeout", "30")

    assert result.returncode == 0, result.stderr
    after = [entry for entry in city.state()["services"] if entry["name"] == "tinyalpha"]
    assert all(entry["ready"] and entry["pid"] != before[entry["instance"]] for entry in after)
    assert not [pid for pid in before.values() if alive(pid)]
    peers = json.loads(_env_of(city, "tinybeta")["AGORA_PEERS"])
    assert peers["tinyalpha"] == [entry["grpc"] for entry in after]  # same ports: callers need no news
    seen = {(int(pid), event): float(at) for at, pid, event in (line.split() for line in events.read_text().splitlines())}
    order = []
    for entry in sorted(after, key=lambda entry: entry["instance"]):
        old, new = before[entry["instance"]], entry["pid"]
        assert seen[(new, "ready")] < seen[(old, "stopping")], "the old instance stopped before the new one served"
        order += [seen[(new, "ready")], seen[(old, "stopping")]]
    assert order == sorted(order)  # one instance at a time


def _env_of(city: City, service: str) -> dict[str, str]:
    from urllib.request import urlopen

    entry = next(entry for entry in city.state()["services"] if entry["name"] == service)
    with urlopen(f"http://{entry['http']}/env", timeout=5) as response:
        return json.load(response)


def test_chaos_kill_is_undone_by_the_supervisor(city: City) -> None:
    assert city.agora("up", "--detach", "--timeout", "30").returncode == 0
    victim = next(entry for entry in city.state()["services"] if entry["name"] == "tinybeta")

    assert city.agora("chaos", "kill", "tinybeta").returncode == 0

    result = city.agora("restart", "tinygate", "--timeout", "30")  # also proves the city still works
    assert result.returncode == 0, result.stderr
    beta = next(entry for entry in city.state()["services"] if entry["name"] == "tinybeta")
    assert beta["pid"] != victim["pid"] and beta["restarts"] >= 1


def test_chaos_faults_are_what_the_chassis_reads(city: City) -> None:
    chaos_dir = city.home / "chaos"
    assert city.agora("chaos", "delay", "tinyalpha", "250", "--for", "60").returncode == 0
    assert city.agora("chaos", "fail", "tinyalpha", "0.5").returncode == 0

    faults = ChaosSwitch(chaos_dir, "tinyalpha").current()
    assert faults.delay_ms == 250 and faults.fail_rate == 0.5
    # Each fault ends at its own time: the untimed failure does not make the delay permanent.
    assert faults.delay_until is not None and 55 < faults.delay_until - time.time() <= 60
    assert faults.fail_until is None
    status = city.agora("chaos", "status").stdout
    assert "tinyalpha: delay 250 ms until " in status and status.rstrip().endswith("fail 50% of calls")

    assert city.agora("chaos", "clear").returncode == 0
    assert ChaosSwitch(chaos_dir, "tinyalpha").current().fail_rate == 0
    unknown = city.agora("chaos", "delay", "nosuch", "10")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1


def test_chaos_kill_never_signals_a_pid_the_city_no_longer_owns(city: City) -> None:
    """city.json may name an instance that is stopped, still starting, or gone with its pid reused:
    `kill` refuses each in one line and signals nothing."""
    supervisor, stranger = (subprocess.Popen(["sleep", "60"]) for _ in range(2))
    try:
        instances = {
            "tinyalpha": {"pid": None, "create_time": None, "stopped": True},
            "tinybeta": {"pid": None, "create_time": None, "stopped": False},
            # The pid is alive, but it started long after the instance did: someone else has it now.
            "tinygate": {"pid": stranger.pid, "create_time": 1.0, "stopped": False},
        }
        city.home.mkdir(parents=True)
        (city.home / "city.json").write_text(json.dumps({
            "city": city.env["AGORA_CITY"], "home": str(city.home), "status": "ready",
            "supervisor": {"pid": supervisor.pid, "create_time": psutil.Process(supervisor.pid).create_time()},
            "services": [{"name": name, "instance": 0, **entry} for name, entry in instances.items()],
            "infra": [],
        }))

        for name, expected in (("tinyalpha", "is stopped"), ("tinybeta", "not running"), ("tinygate", "not running")):
            result = city.agora("chaos", "kill", name)

            assert result.returncode == 1, result.stderr
            assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr
        assert stranger.poll() is None
    finally:
        for process in (supervisor, stranger):
            process.kill()
            process.wait()
