"""The chaos suite: steady checkout load while every service is killed once in turn and NATS,
Postgres and Redis are restarted; then everything is healed and every invariant of the checkout
saga is checked against the services' own databases, the mail sink and the broker.

    .venv/bin/python -m tests.chaos.suite --minutes 10 [--shoppers 24] [--json]

Starts its own city (`agora up --detach` in a fresh temporary AGORA_HOME, its own city name and
a free gateway port, through `tests/e2e/conftest.py`'s `running_city`), prints the report and
exits 1 on any violation; `agora down` always runs, and no process it started is left.
`tests/chaos/test_chaos_suite.py` runs a short version in the normal test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.chaos import checkers, load
from tests.chaos.snapshot import CityReader
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, City, running_city

INFRA = ("nats", "postgres", "redis")
SETTLE_SECONDS = 30.0
"""Every accepted order must be terminal within this long after healing (the invariant)."""
QUIET_SECONDS = 60.0
INFRA_DOWN_SECONDS = 1.0


def chaos_environment() -> dict[str, str]:
    """A city of its own: its own name, limits far above the load."""
    return {
        "AGORA_CITY": f"chaos{uuid.uuid4().hex[:6]}",
        "AGORA_LOGIN_RATE_LIMIT_PER_MINUTE": "100000",
        "AGORA_REGISTER_RATE_LIMIT_PER_MINUTE": "100000",
        "AGORA_RATE_LIMIT_PER_MINUTE": "10000000",
    }


@dataclass
class Fault:
    at: float
    action: str
    target: str
    ok: bool
    output: str = ""


@dataclass
class Report:
    city: str
    seconds_under_chaos: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    load: load.Load = field(default_factory=load.Load)
    healed_after: float | None = None
    settled_after: float | None = None
    quiet_after: float | None = None
    orders_by_status: dict[str, int] = field(default_factory=dict)
    violations: dict[str, list[checkers.Violation]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    resent_emails: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "city": self.city,
            "seconds_under_chaos": round(self.seconds_under_chaos, 1),
            "orders": {"placed": self.load.attempts, "accepted": len(self.load.accepted),
                       "cancel_requests": self.load.cancels, "by_status": self.orders_by_status},
            "client_errors": dict(self.load.errors.most_common()),
            "faults": [{"at": round(f.at, 1), "action": f.action, "target": f.target, "ok": f.ok,
                        **({"output": f.output} if not f.ok else {})} for f in self.faults],
            "healed_after_seconds": _round(self.healed_after),
            "settled_after_heal_seconds": _round(self.settled_after),
            "quiet_after_heal_seconds": _round(self.quiet_after),
            "violations": {name: [v.as_dict() for v in found] for name, found in self.violations.items()},
            "dead_letters": self.dead_letters,
            "resent_emails_same_message_id": self.resent_emails,
            "notes": self.notes,
        }


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} chaos: {message}", file=sys.stderr, flush=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def leftovers(home: Path) -> list[str]:
    """Processes still running for the city in `home`: its path on their command line, or their
    AGORA_HOME. `agora down` must leave none, whatever was killed and restarted during the run
    (the pids `agora status` showed at start are long gone by then)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            mentions = str(home) in " ".join(process.info["cmdline"] or [])
            if not mentions:
                mentions = process.environ().get("AGORA_HOME") == str(home)
            if mentions and process.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def can_stop_and_start(city: City) -> bool:
    """Whether this checkout's `agora` has `chaos stop|start` (needed for the infra restarts)."""
    commands = city.agora("chaos", "--help", check=False).stdout
    return " stop " in commands and " start " in commands


def schedule(services: list[str], infra: bool) -> list[tuple[str, str]]:
    """One round: kill every service in turn, with the infrastructure restarts spread among them."""
    faults = [("kill", service) for service in services]
    if infra:
        for position, server in enumerate(INFRA):
            faults.insert((position + 1) * len(faults) // (len(INFRA) + 1) + position, ("restart", server))
    return faults


async def inflict(city: City, action: str, target: str) -> tuple[bool, str]:
    if action == "kill":
        done = await asyncio.to_thread(city.agora, "chaos", "kill", target, check=False)
        return done.returncode == 0, done.stdout + done.stderr
    stopped = await asyncio.to_thread(city.agora, "chaos", "stop", target, check=False)
    if stopped.returncode != 0:
        return False, stopped.stdout + stopped.stderr
    await asyncio.sleep(INFRA_DOWN_SECONDS)
    started = await asyncio.to_thread(city.agora, "chaos", "start", target, "--timeout", "90", check=False,
                                      timeout=150)
    return started.returncode == 0, stopped.stdout + started.stdout + started.stderr


async def heal(city: City, timeout: float = 90.0) -> bool:
    """Lift every fault, start whatever is stopped, and wait until every service is ready."""
    await asyncio.to_thread(city.agora, "chaos", "clear", check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = await asyncio.to_thread(city.status)
        except (subprocess.SubprocessError, ValueError):  # the supervisor busy restarting something
            await asyncio.sleep(0.5)
            continue
        stopped = {entry["name"] for entry in status["services"] + status["infra"] if entry.get("stopped")}
        for name in sorted(stopped, key=lambda name: name not in INFRA):  # servers first
            await asyncio.to_thread(city.agora, "chaos", "start", name, check=False, timeout=150)
        if not stopped and all(entry.get("healthy") for entry in status["services"]):
            return True
        await asyncio.sleep(0.5)
    return False


async def until_settled(reader: CityReader, timeout: float) -> float | None:
    """Seconds until no order is PENDING (None if some still are after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if all(order.status in checkers.TERMINAL for order in await reader.orders()):
                return time.monotonic() - started
        except Exception:  # the database may still be coming back
            pass
        await asyncio.sleep(0.5)
    return None


async def until_quiet(reader: CityReader, timeout: float) -> float | None:
    """Seconds until two looks in a row find every outbox published, every consumer drained and
    no shipment waiting for dispatch (None on timeout)."""
    started = time.monotonic()
    quiet_looks = 0
    while time.monotonic() - started < timeout:
        try:
            busy = checkers.events_drained(await reader.consumers(), await reader.unpublished())
            busy += [s for s in await reader.shipments()
                     if s.status == "created" and s.dispatch_attempts < checkers.STUCK_AFTER_ATTEMPTS]
        except Exception:  # a server still coming back is just "not quiet yet"
            busy = ["unreachable"]
        quiet_looks = quiet_looks + 1 if not busy else 0
        if quiet_looks >= 2:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    return None


async def run(city: City, *, seconds: float, shoppers: int, products: int = 8, stock: int = 400,
              warmup: float = 3.0, infra: bool | None = None) -> tuple[Report, load.Shop]:
    """Load, faults for `seconds` (one round of the schedule at least, repeated to fill the
    time), heal, settle, check."""
    reader = CityReader(city.home)
    report = Report(city=reader.city)
    infra = can_stop_and_start(city) if infra is None else infra
    if not infra:
        report.notes.append("`agora chaos stop|start` is missing: no infrastructure restarts")
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        shop = await load.prepare(http, city.base_url, ADMIN_EMAIL, ADMIN_PASSWORD, shoppers=shoppers,
                                  products=products, stock=stock)
        stop = asyncio.Event()
        buying = asyncio.create_task(load.run(http, shop, stop, report.load))
        log(f"{len(shop.shoppers)} shoppers buying {len(shop.stock)} products")
        await asyncio.sleep(warmup)
        round_ = schedule(reader.services(), infra)
        gap = max(0.5, seconds / len(round_))
        started = time.monotonic()
        while True:
            for action, target in round_:
                ok, output = await inflict(city, action, target)
                log(f"{action} {target}: {'done' if ok else 'FAILED ' + output.strip()[-200:]}")
                report.faults.append(Fault(time.monotonic() - started, action, target, ok, output.strip()[-500:]))
                await asyncio.sleep(max(0.0, gap - (time.monotonic() - started) % gap))
            if time.monotonic() - started >= seconds:
                break
        report.seconds_under_chaos = time.monotonic() - started
        log(f"healing; {len(report.load.accepted)} orders accepted so far")
        healing = time.monotonic()
        healed = await heal(city)
        report.healed_after = time.monotonic() - healing
        if not healed:
            report.notes.append("some service was not ready 90 s after healing")
        healed_at = time.monotonic()
        stop.set()
        await buying
        report.settled_after = await until_settled(reader, SETTLE_SECONDS - (time.monotonic() - healed_at))
        if report.settled_after is not None:
            report.settled_after = time.monotonic() - healed_at
        settled = report.settled_after is not None
        log(f"healed in {report.healed_after:.1f} s; orders settled: {settled}")
        if await until_quiet(reader, QUIET_SECONDS) is not None:
            report.quiet_after = time.monotonic() - healed_at
        api_statuses = await load.statuses(http, city.base_url, report.load)
    log(f"events drained: {report.quiet_after is not None}; checking")
    snapshot = await reader.snapshot(accepted=report.load.accepted, initial_stock=shop.stock)
    snapshot.api_statuses = api_statuses
    report.violations = checkers.check(snapshot)
    if not settled and not report.violations["orders_settle"]:
        report.violations["orders_settle"].append(checkers.Violation(
            "orders settle", "all orders", f"some order was still PENDING {SETTLE_SECONDS:g} s after healing"))
    report.orders_by_status = dict(Counter(order.status for order in snapshot.orders).most_common())
    report.dead_letters = snapshot.dead_letters
    report.resent_emails = checkers.resent_emails(snapshot.emails)
    for fault in report.faults:
        if not fault.ok:
            report.notes.append(f"{fault.action} {fault.target} failed: {fault.output[-200:]}")
    return report, shop


def print_report(report: Report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    figures = report.as_dict()
    print(f"city {report.city}: {figures['orders']['placed']} orders placed, {figures['orders']['accepted']} accepted "
          f"({figures['orders']['by_status']}), {len(report.faults)} faults in {figures['seconds_under_chaos']} s")
    print(f"healed in {figures['healed_after_seconds']} s; orders settled {figures['settled_after_heal_seconds']} s "
          f"and events drained {figures['quiet_after_heal_seconds']} s after")
    print(f"client errors while broken: {figures['client_errors']}")
    for name, found in report.violations.items():
        print(f"{'FAIL' if found else 'ok  '} {name}" + (f": {len(found)} violations" if found else ""))
        for violation in found[:20]:
            print(f"     {violation.subject}: {violation.detail}")
    print(f"dead letters: {len(report.dead_letters)}; identical resent emails: {report.resent_emails}")
    for letter in report.dead_letters[:20]:
        print(f"     {letter['consumer']} {letter['event_type']}: {letter['error'][:120]}")
    for note in report.notes:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="time under faults (default 10)")
    parser.add_argument("--shoppers", type=int, default=24)
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args(argv)
    with running_city(prefix="agora-chaos-", **chaos_environment()) as city:
        report, _ = asyncio.run(run(city, seconds=options.minutes * 60, shoppers=options.shoppers,
                                    products=options.products))
    left = leftovers(city.home)
    if left:
        report.notes.append(f"processes left after agora down: {left}")
    print_report(report, options.json)
    return 0 if report.ok and not left else 1


if __name__ == "__main__":
    sys.exit(main())
