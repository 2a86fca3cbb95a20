"""`agora`: start, inspect and stop the city."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agora_cli import control, state
from agora_cli.config import Config, Home, home_from_env
from agora_cli.dlq import dlq_app
from agora_cli.errors import AgoraError, errors, one_line_errors
from agora_cli.keys import app as keys_app
from agora_cli.net import address_of, http_status, tcp_answers
from agora_cli.processes import INFRA_GRACE_SECONDS, SERVICE_GRACE_SECONDS, same_process_alive, tail
from agora_cli.replay import replay_app
from agora_cli.topology import Service, load, topology_path
from agora_cli.topology import select as select_services

app = typer.Typer(
    help="Run, inspect and stop Agora, the shop built as a city of services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (tests, scripts) is not cut at 80 columns: tables stay whole, errors one line.
# No markup: what is printed quotes paths, subjects and log lines, whose brackets Rich would eat
# or choke on; styles are set with Text instead.
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 240)

# Time for the detached supervisor to report back beyond the readiness timeout it enforces itself.
_REPORT_MARGIN_SECONDS = 30.0
_DOWN_TIMEOUT_SECONDS = SERVICE_GRACE_SECONDS + INFRA_GRACE_SECONDS + 10.0
# What an operator may ask for: no zero that reads as "forever" or "the default", nothing
# infinite (JSON has no Infinity, select() no endless wait), nothing negative.
_SHORTEST_SECONDS = 1.0
_LONGEST_SECONDS = 7 * 24 * 3600.0
_LONGEST_DELAY_MS = 3600 * 1000.0


@app.command()
@one_line_errors
def up(
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once every service is ready.")] = False,
    timeout: Annotated[
        float,
        typer.Option(min=_SHORTEST_SECONDS, max=_LONGEST_SECONDS, help="Seconds every service has to become ready."),
    ] = 60.0,
    replicas: Annotated[
        list[str] | None, typer.Option("--replicas", help="NAME=N: run N instances of a service.")
    ] = None,
) -> None:
    """Start the infrastructure and every service, and keep them running."""
    config = Config.from_env()
    services = _services(config)
    counts = _parse_replicas(replicas or [], services)
    stale = state.read(config.home)
    if stale and not state.supervisor_alive(stale):
        # A supervisor that was killed left its services and servers behind, holding ports.
        _stop_leftovers(stale)
        state.remove(config.home)
    if detach:
        notes = _start_detached(config, counts, timeout)
    else:
        notes = None
        asyncio.run(_run_foreground(config, services, counts, timeout))
    if notes is not None:
        _print_city(config.home, notes)


def _services(config: Config) -> dict[str, Service]:
    return select_services(load(topology_path()), config.services_filter)


def _parse_replicas(values: list[str], services: dict[str, Service]) -> dict[str, int]:
    counts = {}
    for value in values:
        name, _, count = value.partition("=")
        if name not in services or not count.isdigit() or int(count) < 1:
            raise AgoraError(f"--replicas wants NAME=N with a service of this city and N >= 1, got {value!r}")
        counts[name] = int(count)
    return counts


async def _run_foreground(config: Config, services: dict[str, Service], counts: dict[str, int], timeout: float) -> None:
    # Imported here: the supervisor pulls in asyncpg, grpc and cryptography, which every other
    # command can do without (they start in a fraction of the time).
    from agora_cli.supervisor import Supervisor, stop_on_signals

    stop = asyncio.Event()
    stop_on_signals(stop)
    supervisor = Supervisor(config, services, replicas=counts, timeout=timeout, say=_say)

    def ready(notes: list[str]) -> None:
        _print_city(config.home, notes)
        console.print("Ctrl-C stops the city.")

    started = time.monotonic()
    console.print(Text.assemble("starting city ", (config.city, "bold"), f" in {config.home.root} ..."))
    await supervisor.run(stop, ready)
    console.print(f"city {config.city} stopped after {time.monotonic() - started:.0f} s")


def _say(line: str) -> None:
    console.print(Text.assemble((time.strftime("%H:%M:%S"), "dim"), f" {line}"))


def _start_detached(config: Config, counts: dict[str, int], timeout: float) -> list[str]:
    home = config.home
    home.root.mkdir(parents=True, exist_ok=True)
    home.logs.mkdir(exist_ok=True)
    running = state.read(home)
    if running and state.supervisor_alive(running):
        raise AgoraError(
            f"a city is already running in {home.root} (supervisor pid {running['supervisor']['pid']}); "
            "`agora down` stops it"
        )
    report, report_writer = os.pipe()
    log_path = home.log_of("supervisor")
    with open(log_path, "ab") as log:
        log_start = log.tell()  # earlier runs' lines precede this one's
        supervisor = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-m",
                "agora_cli.supervisor",
                "--notify-fd",
                str(report_writer),
                "--timeout",
                str(timeout),
                "--replicas",
                json.dumps(counts),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(report_writer,),
            start_new_session=True,
        )
    os.close(report_writer)
    message = _read_report(report, timeout + _REPORT_MARGIN_SECONDS)
    os.close(report)
    if message is None:
        try:
            # The pipe closes as the supervisor exits; if it is still open, the supervisor is stuck.
            status = supervisor.wait(timeout=1)
        except subprocess.TimeoutExpired:
            _stop_pid(supervisor.pid)
            raise AgoraError(
                f"the supervisor did not report within {timeout:g} s (log: {log_path})", tail(log_path, since=log_start)
            ) from None
        if status == 0:  # it exits 0 without a report only when a signal (`agora down`) stopped it
            raise AgoraError(f"the city in {home.root} was stopped while starting")
        raise AgoraError(
            f"the supervisor exited with status {status} (log: {log_path})", tail(log_path, since=log_start)
        )
    if "error" in message:
        supervisor.wait(timeout=_DOWN_TIMEOUT_SECONDS)
        raise AgoraError(message["error"], message.get("details"))
    return message.get("notes", [])


def _read_report(descriptor: int, timeout: float) -> dict[str, Any] | None:
    """The supervisor's one JSON line, or None if it closed the pipe (died) or stayed silent."""
    deadline = time.monotonic() + timeout
    received = b""
    while not received.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            return None
        chunk = os.read(descriptor, 65536)
        if not chunk:
            return None
        received += chunk
    return json.loads(received)


def _stop_pid(pid: int) -> None:
    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(_DOWN_TIMEOUT_SECONDS)
    except psutil.TimeoutExpired:
        process.kill()
    except psutil.Error:
        pass


def _print_city(home: Home, notes: list[str]) -> None:
    city = state.read(home)
    if city is None:
        raise AgoraError(f"the city in {home.root} stopped while starting (log: {home.log_of('supervisor')})")
    table = Table(title=f"city {city['city']} ({city['home']})", title_justify="left")
    for column in ("service", "pid", "url / address", "gRPC"):
        table.add_column(column)
    public = (city.get("gateway_url") or "").removeprefix("http://")
    for entry in sorted(city["services"], key=lambda entry: entry["http"] != public):
        url = f"http://{entry['http']}"
        table.add_row(_instance_name(entry), str(entry["pid"]), url, entry["grpc"] or "")
    for server in city["infra"]:
        table.add_row(server["name"], str(server["pid"] or "external"), server["url"], "")
    console.print(table)
    if city.get("gateway_url"):
        console.print(Text.assemble("Agora is up: ", (city["gateway_url"], "bold")))
    for note in notes:
        console.print(note)


def _instance_name(entry: dict[str, Any]) -> str:
    return entry["name"] if entry["instance"] == 0 else f"{entry['name']}-{entry['instance']}"


@app.command()
@one_line_errors
def down() -> None:
    """Stop every service, the supervisor and the embedded servers, and wait until they are gone."""
    home = home_from_env()
    city = state.read(home)
    if city is None:
        console.print(f"no city is running in {home.root}")
        return
    supervisor = city["supervisor"]
    if same_process_alive(supervisor["pid"], supervisor.get("create_time")):
        os.kill(supervisor["pid"], signal.SIGTERM)
        _wait_gone([(supervisor["pid"], supervisor.get("create_time"))], _DOWN_TIMEOUT_SECONDS)
    _stop_leftovers(city)
    state.remove(home)
    console.print(f"city {city['city']} stopped")


def _stop_leftovers(city: dict[str, Any]) -> None:
    """Processes a supervisor that died abruptly left behind, matched by pid and start time."""
    leftovers = [
        (entry["pid"], entry.get("create_time"), entry.get("stop_signal") or signal.SIGTERM)
        for entry in state.leftovers(city)
    ]
    for pid, _, signum in leftovers:
        _signal(pid, signum)
    survivors = _wait_gone([(pid, started) for pid, started, _ in leftovers], SERVICE_GRACE_SECONDS)
    for pid in survivors:
        _signal(pid, signal.SIGKILL)
    _wait_gone([(pid, None) for pid in survivors], 5)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(processes: list[tuple[int, float | None]], timeout: float) -> list[int]:
    """Waits for the processes to end; returns the pids still running after `timeout`."""
    deadline = time.monotonic() + timeout
    running = [(pid, started) for pid, started in processes if same_process_alive(pid, started)]
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [(pid, started) for pid, started in running if same_process_alive(pid, started)]
    return [pid for pid, _ in running]


@app.command()
@one_line_errors
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Show each service and server: pid, addresses, health."""
    home = home_from_env()
    city = state.read(home)
    running = city is not None and state.supervisor_alive(city)
    report = asyncio.run(_health_report(city)) if city and running else {"services": [], "infra": []}
    if as_json:
        print(json.dumps(report))
    elif running:
        _print_status(city, report)
    if not running:
        if not as_json:
            errors.print(state.not_running(home, city))
        raise typer.Exit(1)


async def _health_report(city: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    async def service_health(entry: dict[str, Any]) -> dict[str, Any]:
        host, port = entry["http"].rsplit(":", 1)
        alive = same_process_alive(entry["pid"], entry.get("create_time"))
        healthy = alive and await http_status(host, int(port), "/readyz") == 200
        return {
            "name": entry["name"],
            "instance": entry["instance"],
            "pid": entry["pid"],
            "healthy": healthy,
            "stopped": entry.get("stopped", False),
            "grpc": entry["grpc"],
            "http": entry["http"],
        }

    async def infra_health(entry: dict[str, Any]) -> dict[str, Any]:
        host, port = address_of(entry["url"], 0)
        alive = not entry["embedded"] or same_process_alive(entry["pid"], entry.get("create_time"))
        healthy = alive and await tcp_answers(host, port)
        return {
            "name": entry["name"],
            "pid": entry["pid"],
            "url": entry["url"],
            "embedded": entry["embedded"],
            "healthy": healthy,
            "stopped": entry.get("stopped", False),
        }

    services = await asyncio.gather(*(service_health(entry) for entry in city["services"]))
    servers = await asyncio.gather(*(infra_health(entry) for entry in city["infra"]))
    return {"services": list(services), "infra": list(servers)}


@app.command()
@one_line_errors
def dashboard(
    watch: Annotated[bool, typer.Option("--watch", help="Redraw every interval until Ctrl-C.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    interval: Annotated[
        float,
        typer.Option(min=_SHORTEST_SECONDS, max=_LONGEST_SECONDS, help="Seconds between the two scrapes of /metrics."),
    ] = 2.0,
) -> None:
    """Is each service working? Rates, failures, p99, events, outbox and circuits, with a verdict."""
    from agora_cli import dashboard

    try:
        asyncio.run(dashboard.run(home_from_env(), console, interval=interval, watch=watch, as_json=as_json))
    except KeyboardInterrupt:
        pass


def _print_status(city: dict[str, Any], report: dict[str, list[dict[str, Any]]]) -> None:
    unhealthy = sum(not health["healthy"] for health in report["services"] + report["infra"])
    condition = f"degraded, {unhealthy} not healthy" if city["status"] == "ready" and unhealthy else city["status"]
    table = Table(title=f"city {city['city']}: {condition} ({city['home']})", title_justify="left")
    for column in ("name", "pid", "health", "http", "gRPC", "restarts"):
        table.add_column(column)
    for entry, health in zip(city["services"], report["services"], strict=True):
        table.add_row(
            _instance_name(entry),
            str(entry["pid"] or ""),
            _health_word(health),
            entry["http"],
            entry["grpc"] or "",
            str(entry["restarts"]),
        )
    for entry, health in zip(city["infra"], report["infra"], strict=True):
        kind = "embedded" if entry["embedded"] else "external"
        table.add_row(
            f"{entry['name']} ({kind})",
            str(entry["pid"] or ""),
            _health_word(health),
            entry["url"],
            "",
            str(entry.get("restarts", 0)),
        )
    console.print(table)


def _health_word(health: dict[str, Any]) -> Text:
    if health["stopped"]:
        return Text("stopped", style="red")
    return Text("healthy", style="green") if health["healthy"] else Text("unhealthy", style="red")


@app.command()
@one_line_errors
def logs(
    service: Annotated[
        str | None, typer.Argument(help="A service or server (postgres, nats, ...); all if omitted.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show from the end of each log.")] = 50,
) -> None:
    """Print the logs of the city, or of one service."""
    home = home_from_env()
    paths = _log_files(home, service)
    for path in paths:
        for line in tail(path, lines):
            _print_log_line(path, line, len(paths) > 1)
    if follow:
        try:
            _follow(home, service, paths)
        except KeyboardInterrupt:
            pass


def _log_files(home: Home, service: str | None) -> list[Path]:
    if service is None:
        found = sorted(home.logs.glob("*.log"))
        if not found:
            raise AgoraError(f"no logs in {home.logs}: no city has run in this home")
        return found
    found = sorted({*home.logs.glob(f"{service}-*.log"), *home.logs.glob(f"{service}.log")})
    if not found:
        raise AgoraError(f"no logs for {service!r} in {home.logs}")
    return found


def _print_log_line(path: Path, line: str, prefixed: bool) -> None:
    if prefixed:
        console.print(Text.assemble((path.stem, "cyan"), " | "), end="")
    console.print(line, soft_wrap=True)


def _follow(home: Home, service: str | None, paths: list[Path]) -> None:
    positions = {path: path.stat().st_size for path in paths}
    while True:
        # Instances started later (a restart, more replicas) show up as new files.
        for path in _log_files(home, service):
            positions.setdefault(path, 0)
        for path, position in positions.items():
            size = path.stat().st_size if path.exists() else 0
            if size < position:
                position = 0
            if size > position:
                with open(path, "rb") as file:
                    file.seek(position)
                    chunk = file.read()
                complete, _, _ = chunk.rpartition(b"\n")
                if complete:
                    for line in complete.decode(errors="replace").splitlines():
                        _print_log_line(path, line, len(positions) > 1)
                    positions[path] = position + len(complete) + 1
        time.sleep(0.2)


def _kubernetes_accepts(pattern: str, what: str) -> Callable[[str], str]:
    """A check Kubernetes would make of the value, made before anything is written (exit 2)."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise typer.BadParameter(f"{value!r} is not {what}")
        return value

    return check


@app.command()
@one_line_errors
def manifests(
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to write to (default: k8s/ beside the topology).")
    ] = None,
    namespace: Annotated[str, typer.Option(
        help="The Kubernetes namespace of the city.",
        callback=_kubernetes_accepts(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?", "a namespace: a lower-case DNS label"),
    )] = "agora",
    image_repository: Annotated[str, typer.Option(
        help="Images are REPOSITORY/<service>:TAG.",
        callback=_kubernetes_accepts(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*",
                                     "an image repository"),
    )] = "agora",
    tag: Annotated[str, typer.Option(
        help="The image tag of every service.",
        callback=_kubernetes_accepts(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", "an image tag"),
    )] = "latest",
) -> None:
    """Write the city's Kubernetes manifests, generated from the topology (docs/architecture.md)."""
    # Imported here, as the supervisor is: only this command needs it.
    from agora_cli.manifests import Target, generate, write

    path = topology_path()
    target = Target(namespace=namespace, image_repository=image_repository, tag=tag)
    written = write(out or path.parent / "k8s", generate(load(path), target))
    console.print(f"wrote {len(written)} files to {written[0].parent}")


@app.command()
@one_line_errors
def mail(show: Annotated[int | None, typer.Option("--show", help="Print message N in full.")] = None) -> None:
    """List the emails the local SMTP sink received, or show one."""
    home = home_from_env()
    messages = sorted(home.mail.glob("*.eml"))
    if show is not None:
        if not 1 <= show <= len(messages):
            raise AgoraError(f"no message {show}: there are {len(messages)} in {home.mail}")
        console.print(messages[show - 1].read_bytes().decode(errors="replace"))
        return
    if not messages:
        console.print(f"no mail in {home.mail}")
        return
    table = Table()
    for column in ("#", "date", "from", "to", "subject"):
        table.add_column(column)
    parser = BytesParser(policy=policy.default)
    for number, path in enumerate(messages, start=1):
        with open(path, "rb") as file:
            headers = parser.parse(file, headersonly=True)
        table.add_row(
            str(number),
            str(headers["date"] or ""),
            str(headers["from"] or ""),
            str(headers["to"] or ""),
            str(headers["subject"] or ""),
        )
    console.print(table)


def _instances_of(city: dict[str, Any], service: str) -> list[dict[str, Any]]:
    instances = [entry for entry in city["services"] if entry["name"] == service]
    if not instances:
        names = ", ".join(sorted({entry["name"] for entry in city["services"]}))
        raise AgoraError(f"no service {service!r} in this city (running: {names})")
    return instances


@app.command()
@one_line_errors
def restart(
    service: Annotated[str, typer.Argument(help="The service whose instances restart.")],
    timeout: Annotated[
        float,
        typer.Option(min=_SHORTEST_SECONDS, max=_LONGEST_SECONDS, help="Seconds to wait until they are ready again."),
    ] = 60.0,
) -> None:
    """Restart every instance of a service, one by one, with no request lost.

    Each instance gets a new process on the same ports; the old one is stopped (and drains its
    in-flight work) only once the new one is ready.
    """
    home = home_from_env()
    city = state.running(home)
    count = len(_instances_of(city, service))
    _ask_supervisor(city, "restart", service, timeout, waits=count * (timeout + SERVICE_GRACE_SECONDS))
    console.print(f"{service} restarted")


def _ask_supervisor(city: dict[str, Any], op: str, name: str, timeout: float, *, waits: float) -> dict[str, Any]:
    """Has the running supervisor do `op` on `name`; `waits` bounds how long its answer may take."""
    path = city.get("control")
    if not path:
        raise AgoraError("this city's supervisor has no control channel; restart it with `agora down` and `agora up`")
    return control.request(path, {"op": op, "name": name, "timeout": timeout}, waits + 10)


chaos_app = typer.Typer(
    help="Break things on purpose: delays, failures, killed or stopped processes.", no_args_is_help=True
)
app.add_typer(chaos_app, name="chaos")
app.add_typer(replay_app, name="replay")
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")


_FaultSeconds = Annotated[
    float | None,
    typer.Option("--for", min=_SHORTEST_SECONDS, max=_LONGEST_SECONDS, help="Lift the fault after this many seconds."),
]


def _chaos_service(service: str) -> Home:
    """The home, once `service` is known to the topology (faults may be set before `up`)."""
    config = Config.from_env()
    if service not in load(topology_path()):
        raise AgoraError(f"no service {service!r} in {topology_path()}")
    return config.home


@chaos_app.command("delay")
@one_line_errors
def chaos_delay(
    service: str,
    milliseconds: Annotated[float, typer.Argument(min=0, max=_LONGEST_DELAY_MS)],
    seconds: _FaultSeconds = None,
) -> None:
    """Delay every gRPC call the service answers."""
    from agora_cli import chaos

    faults = chaos.inject(_chaos_service(service).chaos, service, delay_ms=milliseconds, seconds=seconds)
    console.print(f"{service}: {_describe_faults(faults)}")


@chaos_app.command("fail")
@one_line_errors
def chaos_fail(
    service: str,
    rate: Annotated[float, typer.Argument(min=0, max=1, help="Fraction of calls that fail (UNAVAILABLE).")],
    seconds: _FaultSeconds = None,
) -> None:
    """Fail a fraction of the gRPC calls the service answers."""
    from agora_cli import chaos

    faults = chaos.inject(_chaos_service(service).chaos, service, fail_rate=rate, seconds=seconds)
    console.print(f"{service}: {_describe_faults(faults)}")


@chaos_app.command("kill")
@one_line_errors
def chaos_kill(
    service: str,
    instance: Annotated[int | None, typer.Option(help="Only this instance (default: all).")] = None,
) -> None:
    """SIGKILL a service's processes; the supervisor restarts them."""
    home = home_from_env()
    targets = [entry for entry in _instances_of(state.running(home), service) if instance in (None, entry["instance"])]
    if not targets:
        raise AgoraError(f"{service} has no instance {instance}")
    for entry in targets:
        _refuse_unless_running(entry)
    for entry in targets:
        _signal(entry["pid"], signal.SIGKILL)
        console.print(f"killed {_instance_name(entry)} (pid {entry['pid']})")


def _refuse_unless_running(entry: dict[str, Any]) -> None:
    """A pid from city.json is signalled only while it is still the process the supervisor
    started: one that ended may have been reused by some other program."""
    if entry.get("stopped"):
        raise AgoraError(f"{_instance_name(entry)} is stopped; `agora chaos start {entry['name']}` starts it")
    if not same_process_alive(entry["pid"], entry.get("create_time")):
        raise AgoraError(f"{_instance_name(entry)} is not running now (restarting after a crash)")


@chaos_app.command("stop")
@one_line_errors
def chaos_stop(
    name: Annotated[str, typer.Argument(help="A service, or an embedded server: postgres, nats, redis, smtp.")],
) -> None:
    """Stop every instance of a service, or an embedded server, and keep it stopped."""
    city = state.running(home_from_env())
    answer = _ask_supervisor(city, "stop", name, 0, waits=SERVICE_GRACE_SECONDS + INFRA_GRACE_SECONDS)
    console.print(f"stopped {', '.join(answer['stopped'])}; `agora chaos start {name}` starts it again")


@chaos_app.command("start")
@one_line_errors
def chaos_start(
    name: Annotated[str, typer.Argument(help="What `agora chaos stop` stopped.")],
    timeout: Annotated[
        float, typer.Option(min=_SHORTEST_SECONDS, max=_LONGEST_SECONDS, help="Seconds to wait until it is ready.")
    ] = 60.0,
) -> None:
    """Start again what `agora chaos stop` stopped (same ports, same data), and wait until ready."""
    city = state.running(home_from_env())
    _ask_supervisor(city, "start", name, timeout, waits=timeout)
    console.print(f"{name} is ready")


@chaos_app.command("clear")
@one_line_errors
def chaos_clear(service: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None) -> None:
    """Lift injected delays and failures."""
    from agora_cli import chaos

    home = _chaos_service(service) if service else home_from_env()
    cleared = chaos.clear(home.chaos, service)
    console.print(f"cleared: {', '.join(cleared)}" if cleared else "no faults were set")


@chaos_app.command("status")
@one_line_errors
def chaos_status() -> None:
    """Show the faults in force."""
    from agora_cli import chaos

    active = chaos.current(home_from_env().chaos)
    if not active:
        console.print("no faults in force")
    for service, faults in active.items():
        console.print(f"{service}: {_describe_faults(faults)}")


def _describe_faults(faults: dict[str, Any]) -> str:
    def ending(until: float | None) -> str:
        return f" until {time.strftime('%H:%M:%S', time.localtime(until))}" if until else ""

    parts = []
    if faults.get("delay_ms"):
        parts.append(f"delay {faults['delay_ms']:g} ms{ending(faults.get('delay_until'))}")
    if faults.get("fail_rate"):
        parts.append(f"fail {faults['fail_rate']:.0%} of calls{ending(faults.get('fail_until'))}")
    return ", ".join(parts) or "no faults"
