"""The gateway's cost per request against a bare FastAPI hello, plus cold start and memory.

    .venv/bin/python -m benchmarks.gateway [--seconds 10] [--connections 16] [--rounds 3] [--settle 70]

Starts a fresh city with `agora up --detach` in a temporary AGORA_HOME (timing cold start to
ready), sums the city's resident memory, then drives each endpoint with wrk and reads the CPU
the serving process spent (psutil), so the figures are CPU per request and latency
percentiles, reported as ratios to the bare FastAPI app measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
AGORA = Path(sys.executable).parent / "agora"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    assert found, "wrk is needed: apt-get install wrk"
    return found


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(wrk: str, url: str, pids: list[int], seconds: int, connections: int, headers: list[str] = ()) -> dict:
    processes = [psutil.Process(pid) for pid in pids]
    cpu_before = [sum(p.cpu_times()[:2]) for p in processes]
    args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for header in headers:
        args += ["-H", header]
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    cpu = [sum(p.cpu_times()[:2]) - before for p, before in zip(processes, cpu_before, strict=True)]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    return {
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "cpu_ms_per_request": round(cpu[0] / requests * 1000, 4),
        "city_cpu_ms_per_request": round(sum(cpu) / requests * 1000, 4),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
    }


def summary(measured: list[dict], bare: list[dict]) -> dict:
    """Medians over the rounds; each ratio is the median of the rounds' own ratios to the bare app."""
    figures: dict = {
        "requests": sum(m["requests"] for m in measured),
        "non_2xx": sum(m["non_2xx"] for m in measured),
    }
    for key in ("rps", "cpu_ms_per_request", "city_cpu_ms_per_request", "p50_ms", "p99_ms"):
        figures[key] = round(statistics.median(m[key] for m in measured), 4)
    for key, ratio in (("cpu_ms_per_request", "cpu_ratio"), ("p50_ms", "p50_ratio"), ("p99_ms", "p99_ratio")):
        per_round = [round(m[key] / b[key], 2) for m, b in zip(measured, bare, strict=True)]
        figures[ratio] = round(statistics.median(per_round), 2)
        figures[f"{ratio}_by_round"] = per_round
    return figures


def city_memory_mb(status: dict) -> dict[str, float]:
    """The city's resident memory: RSS summed per process, and PSS (shared pages counted once),
    in all and by part (the Python services, Postgres with its backends, the other servers).

    Postgres backends share its buffers, and Python processes share libraries and, forked from
    one fork server, the chassis they imported there; summed RSS counts those pages once per
    process, while PSS splits each shared page among its users.
    """
    totals: dict[str, float] = {}
    parts = [("services", entry) for entry in status["services"]]
    parts += [("postgres" if entry["name"] == "postgres" else "other servers", entry) for entry in status["infra"]]
    for part, entry in parts:
        try:
            process = psutil.Process(entry["pid"])
            members = [process, *process.children(recursive=True)]
        except (psutil.NoSuchProcess, TypeError):
            continue
        for member in members:
            try:
                info = member.memory_full_info()
            except psutil.NoSuchProcess:  # a backend that closed meanwhile
                continue
            totals["processes"] = totals.get("processes", 0) + 1
            for key, value in ((f"{part} rss_mb", info.rss), (f"{part} pss_mb", info.pss),
                               ("rss_mb", info.rss), ("pss_mb", info.pss)):
                totals[key] = totals.get(key, 0) + value
    return {key: round(value / 1024**2, 1) if key.endswith("_mb") else value for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each endpoint, medians reported")
    parser.add_argument("--settle", type=int, default=70,
                        help="seconds idle before memory is measured again (pools drop idle connections after 60 s)")
    options = parser.parse_args()
    wrk = ensure_wrk()

    home = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    gateway_port = free_port()
    env = {**os.environ, "AGORA_HOME": str(home), "AGORA_GATEWAY_PORT": str(gateway_port),
           "AGORA_CITY": "bench", "AGORA_RATE_LIMIT_PER_MINUTE": "100000000"}
    bare = None
    try:
        started = time.perf_counter()
        subprocess.run([str(AGORA), "up", "--detach"], env=env, check=True, capture_output=True, cwd=ROOT)
        cold_start = round(time.perf_counter() - started, 2)
        status = json.loads(subprocess.run([str(AGORA), "status", "--json"], env=env, check=True,
                                           capture_output=True, text=True, cwd=ROOT).stdout)
        memory = {"at_ready": city_memory_mb(status)}
        if options.settle:
            time.sleep(options.settle)
            memory[f"after_{options.settle}_s_idle"] = city_memory_mb(status)
        gateway_pid = next(s["pid"] for s in status["services"] if s["name"] == "gateway")
        other_pids = [s["pid"] for s in status["services"] if s["name"] != "gateway"]

        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_hello", str(bare_port)], cwd=ROOT)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", bare_port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)

        base = f"http://127.0.0.1:{gateway_port}"
        product = json.loads(subprocess.run(["curl", "-s", f"{base}/api/v1/products?page_size=1"],
                                            capture_output=True, text=True, check=True).stdout)["items"][0]["id"]
        warm = max(2, options.seconds // 5)
        endpoints = [
            ("bare FastAPI hello", f"http://127.0.0.1:{bare_port}/hello", [bare.pid]),
            ("gateway GET /api/v1/products", f"{base}/api/v1/products?page_size=20", [gateway_pid, *other_pids]),
            ("gateway GET /api/v1/products/{id}", f"{base}/api/v1/products/{product}", [gateway_pid, *other_pids]),
        ]
        # Round after round, each endpoint right after the bare app: a shared machine's load drifts
        # by tens of percent within minutes, so each ratio compares figures taken moments apart.
        rounds: dict[str, list[dict]] = {name: [] for name, _, _ in endpoints}
        for _ in range(options.rounds):
            for name, url, pids in endpoints:
                load(wrk, url, pids, warm, options.connections)
                rounds[name].append(load(wrk, url, pids, options.seconds, options.connections))
        results = {name: summary(measured, rounds["bare FastAPI hello"]) for name, measured in rounds.items()}
        report = {"cold_start_seconds": cold_start, "load_average": os.getloadavg(), "city_memory": memory,
                  "services": sorted(s["name"] for s in status["services"]), "endpoints": results}
        print(json.dumps(report, indent=2))
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        subprocess.run([str(AGORA), "down"], env=env, capture_output=True, cwd=ROOT)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
