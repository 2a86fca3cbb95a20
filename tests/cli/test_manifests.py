"""`agora manifests`: the Kubernetes manifests follow deploy/topology.toml, name only variables the
services read, and are valid Kubernetes objects (the real OpenAPI schemas, via kubernetes-validate)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices
from typer.testing import CliRunner

from agora_cli import manifests
from agora_cli.main import app
from agora_cli.supervisor import OPERATOR_CALLS
from agora_cli.topology import Service, callers_of, load, topology_path
from chassis.admin_http import AdminServer
from chassis.health import Readiness
from chassis.http import create_app
from chassis.messaging.envelope import contracts_dir
from chassis.resilience.policy import FILE_VARIABLE as RESILIENCE_FILE_VARIABLE
from chassis.settings import ServiceSettings
from tests.cli.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37.0"
SERVICES = load(topology_path())
FILES = manifests.generate(SERVICES)


def objects_of(kind: str, name: str, files: dict[str, list[dict[str, Any]]] = FILES) -> list[dict[str, Any]]:
    return [
        item
        for objects in files.values()
        for item in objects
        if item["kind"] == kind and item["metadata"]["name"] == name
    ]


def one(kind: str, name: str, files: dict[str, list[dict[str, Any]]] = FILES) -> dict[str, Any]:
    found = objects_of(kind, name, files)
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def container_of(service: str, files: dict[str, list[dict[str, Any]]] = FILES) -> dict[str, Any]:
    [container] = one("Deployment", service, files)["spec"]["template"]["spec"]["containers"]
    return container


def environment_of(service: str) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container_of(service)["env"]}


def grpc_sources(policy: dict[str, Any]) -> list[str]:
    """The services a NetworkPolicy admits to the gRPC port."""
    return [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policy["spec"]["ingress"]
        if any(port["port"] == manifests.GRPC_PORT for port in rule["ports"])
        for peer in rule["from"]
    ]


def topology_with(tmp_path: Path, text: str) -> dict[str, Service]:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return load(path)


# ---------------------------------------------------------------- what the topology declares


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda service: service.name)
def test_every_service_gets_a_deployment_an_autoscaler_a_network_policy_and_its_services(service: Service) -> None:
    one("Deployment", service.name)
    one("HorizontalPodAutoscaler", service.name)
    one("NetworkPolicy", service.name)
    grpc_service = objects_of("Service", service.name)
    assert bool(grpc_service) == service.grpc
    if service.grpc:
        assert grpc_service[0]["spec"]["clusterIP"] == "None"  # round_robin over the pods, by the client
        assert grpc_service[0]["spec"]["ports"] == [
            {"name": "grpc", "port": manifests.GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"}
        ]
    public = objects_of("Service", f"{service.name}-public")
    assert bool(public) == service.public_http
    assert f"{service.name}.yaml" in FILES


def test_only_the_gateway_is_reachable_from_outside() -> None:
    public = [
        item
        for objects in FILES.values()
        for item in objects
        if item["kind"] == "Service" and item["spec"].get("type") == "LoadBalancer"
    ]
    assert [item["metadata"]["name"] for item in public] == ["gateway-public"]
    open_rules = [
        (item["metadata"]["name"], rule["ports"])
        for objects in FILES.values()
        for item in objects
        if item["kind"] == "NetworkPolicy"
        for rule in item["spec"].get("ingress", [])
        if "from" not in rule
    ]
    assert open_rules == [("gateway", [{"port": manifests.GATEWAY_PORT, "protocol": "TCP"}])]
    assert one("NetworkPolicy", "default-deny-ingress")["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_replicas_match_the_topology_and_the_autoscaler_starts_from_them(tmp_path: Path) -> None:
    services = topology_with(tmp_path, "[services.alpha]\ngrpc = true\nreplicas = 3\n")
    files = manifests.generate(services)
    assert one("Deployment", "alpha", files)["spec"]["replicas"] == 3
    assert one("HorizontalPodAutoscaler", "alpha", files)["spec"]["minReplicas"] == 3
    for service in SERVICES.values():
        assert one("Deployment", service.name)["spec"]["replicas"] == service.replicas
        autoscaler = one("HorizontalPodAutoscaler", service.name)["spec"]
        assert autoscaler["minReplicas"] == service.replicas < autoscaler["maxReplicas"]
        assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda service: service.name)
def test_grpc_is_admitted_only_from_the_services_that_call_it(service: Service) -> None:
    assert sorted(grpc_sources(one("NetworkPolicy", service.name))) == callers_of(SERVICES, service.name)


def test_a_service_nobody_calls_admits_no_grpc_at_all(tmp_path: Path) -> None:
    services = topology_with(tmp_path, "[services.lonely]\ngrpc = true\n[services.caller]\ngrpc = true\n")
    policy = one("NetworkPolicy", "lonely", manifests.generate(services))
    assert grpc_sources(policy) == []
    assert all(rule.get("from") for rule in policy["spec"]["ingress"])  # an empty `from` admits everyone


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda service: service.name)
def test_peers_are_the_dns_names_of_the_services_called(service: Service) -> None:
    env = environment_of(service.name)
    called = [callee for callee in service.calls if SERVICES[callee].grpc]
    if not called:
        assert "AGORA_PEERS" not in env
        return
    peers = json.loads(env["AGORA_PEERS"]["value"])
    assert sorted(peers) == sorted(called)
    for callee, addresses in peers.items():
        [callee_service] = objects_of("Service", callee)
        [port] = callee_service["spec"]["ports"]
        assert addresses == [f"{callee}.agora.svc.cluster.local:{port['port']}"]
        assert {"name": "grpc", "containerPort": port["port"], "protocol": "TCP"} in container_of(callee)["ports"]


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda service: service.name)
def test_the_mtls_allow_list_is_the_network_policys(service: Service) -> None:
    env = environment_of(service.name)
    if not service.grpc:
        assert "AGORA_ALLOWED_CALLERS" not in env
        return
    allowed = set(env["AGORA_ALLOWED_CALLERS"]["value"].split(","))
    operator = {"cli"} if service.name in OPERATOR_CALLS else set()
    assert allowed == set(grpc_sources(one("NetworkPolicy", service.name))) | operator


# ---------------------------------------------------------------- what the services read


def settings_class_of(service: str) -> type[ServiceSettings]:
    """The settings class a service runs with (`runtime.run(SettingsClass, build)`)."""
    for module_name in (f"{service}.settings", f"{service}.bootstrap"):
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, ServiceSettings) and value.__module__ == module_name:
                return value
    raise AssertionError(f"no settings class in {service}")


def variables_read_by(settings_class: type[ServiceSettings]) -> dict[str, bool]:
    """Each environment variable the settings class reads, and whether it is required."""
    prefix = settings_class.model_config.get("env_prefix", "")
    variables = {}
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        names = (
            [choice for choice in alias.choices if isinstance(choice, str)] if isinstance(alias, AliasChoices) else []
        )
        for variable in names or [f"{prefix}{name}"]:
            variables[variable.upper()] = field.is_required()
    return variables


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda service: service.name)
def test_every_variable_is_one_the_service_reads_and_every_required_one_is_set(service: Service) -> None:
    read = variables_read_by(settings_class_of(service.name))
    given = set(environment_of(service.name))
    assert given - read.keys() == set(), "the Deployment sets variables the service never reads"
    assert {variable for variable, required in read.items() if required} <= given


@pytest.mark.parametrize("service", SERVICES.values(), ids=lambda service: service.name)
def test_credentials_come_from_the_services_secret_never_from_a_literal(service: Service) -> None:
    env = environment_of(service.name)
    expected = {"AGORA_NATS_URL"} | {
        variable
        for variable, needed in (
            ("AGORA_DSN", service.database),
            ("AGORA_REDIS_URL", service.redis),
            ("AGORA_SMTP_URL", service.smtp),
        )
        if needed
    }
    from_secrets = {name: entry["valueFrom"]["secretKeyRef"] for name, entry in env.items() if "valueFrom" in entry}
    assert set(from_secrets) == expected
    assert {ref["name"] for ref in from_secrets.values()} == {f"{service.name}-secrets"}
    assert not [entry for entry in env.values() if "://" in entry.get("value", "")]
    volumes = {
        volume["name"]: volume for volume in one("Deployment", service.name)["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["tls"]["secret"]["secretName"] == f"{service.name}-tls"
    assert {item["path"] for item in volumes["tls"]["secret"]["items"]} == {
        "ca.pem",
        f"{service.name}.pem",
        f"{service.name}.key",
    }
    mounted = {mount["mountPath"] for mount in container_of(service.name)["volumeMounts"]}
    assert env["AGORA_TLS_DIR"]["value"] in mounted


def test_identitys_signing_key_is_the_same_file_in_every_replica() -> None:
    env = environment_of("identity")
    kek = Path(env["AGORA_SIGNING_KEK_FILE"]["value"])
    mounts = {mount["mountPath"]: mount["name"] for mount in container_of("identity")["volumeMounts"]}
    volumes = {
        volume["name"]: volume for volume in one("Deployment", "identity")["spec"]["template"]["spec"]["volumes"]
    }
    secret = volumes[mounts[str(kek.parent)]]["secret"]
    assert secret["secretName"] == "identity-secrets"
    assert [item["path"] for item in secret["items"]] == [kek.name]


# ---------------------------------------------------------------- probes


async def test_the_probes_ask_the_paths_the_admin_port_answers() -> None:
    port = free_port()
    readiness = Readiness()
    readiness.accepting = True  # as the runtime sets it once the service has started
    server = AdminServer("127.0.0.1", port, readiness)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            for service in SERVICES.values():
                if service.public_http:
                    continue
                container = container_of(service.name)
                named_ports = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    target = container[probe]["httpGet"]
                    assert named_ports[target["port"]] == int(environment_of(service.name)["AGORA_HTTP_PORT"]["value"])
                    async with session.get(f"http://127.0.0.1:{port}{target['path']}") as answer:
                        assert answer.status == 200, f"{service.name} {probe} {target['path']}"
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    finally:
        await server.stop()


def test_the_gateway_is_probed_on_its_public_port_where_its_app_serves_the_probes() -> None:
    edge = create_app(service="gateway", readiness=Readiness(), title="probe", version="0")
    served = {getattr(route, "path", None) for route in edge.routes}
    container = container_of("gateway")
    assert [entry["containerPort"] for entry in container["ports"] if entry["name"] == "http"] == [
        int(environment_of("gateway")["AGORA_HTTP_PORT"]["value"])
    ]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
        assert container[probe]["httpGet"]["path"] in served


# ---------------------------------------------------------------- NATS


def test_nats_runs_jetstream_as_a_three_node_cluster_on_its_own_volumes() -> None:
    statefulset = one("StatefulSet", "nats")["spec"]
    assert statefulset["replicas"] == 3
    assert statefulset["serviceName"] == "nats"
    assert one("Service", "nats")["spec"]["publishNotReadyAddresses"] is True
    config = one("ConfigMap", "nats-config")["data"]["nats.conf"]
    for index in range(3):
        assert f"nats://nats-{index}.nats.agora.svc.cluster.local:{manifests.NATS_CLUSTER_PORT}" in config
    assert "store_dir: /data" in config
    [mount] = [
        mount
        for mount in statefulset["template"]["spec"]["containers"][0]["volumeMounts"]
        if mount["mountPath"] == "/data"
    ]
    assert [claim["metadata"]["name"] for claim in statefulset["volumeClaimTemplates"]] == [mount["name"]]


def test_nats_server_accepts_the_generated_configuration(tmp_path: Path) -> None:
    """The bundled nats-server (the version the image runs) checks the file, with the logins'
    passwords in its environment as the `nats-logins` Secret puts them there."""
    config = tmp_path / "nats.conf"
    config.write_text(one("ConfigMap", "nats-config")["data"]["nats.conf"])
    container = one("StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]
    env = {entry["name"]: "a-password" for entry in container["env"]} | {"POD_NAME": "nats-0"}
    server = Path(sys.executable).parent / "nats-server"
    checked = subprocess.run(
        [str(server), "-c", str(config), "-t"], env=env, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stderr
    users = {f"NATS_PASSWORD_{name.upper()}" for name in [*SERVICES, "cli"]}
    assert users <= env.keys()


def test_nats_admits_clients_only_from_the_citys_services() -> None:
    [clients, routes, _] = one("NetworkPolicy", "nats")["spec"]["ingress"]
    assert {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in clients["from"]} == set(SERVICES)
    assert routes["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "nats"}}}]


# ---------------------------------------------------------------- valid Kubernetes, and committed


def test_every_object_validates_against_the_kubernetes_openapi_schemas() -> None:
    for name, objects in FILES.items():
        for item in objects:
            try:
                # strict: an unknown field (a typo) fails, instead of being dropped by the API server.
                kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                pytest.fail(f"{name}: {item['kind']} {item['metadata']['name']}: {path}: {error.message}")


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = json.loads(json.dumps(one("Deployment", "catalog")))
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_yaml_reads_back_as_the_generated_objects() -> None:
    for objects in FILES.values():
        assert list(yaml.safe_load_all(manifests.render(objects))) == objects


def test_the_committed_manifests_are_what_the_topology_generates() -> None:
    committed = REPO / "deploy" / "k8s"
    assert sorted(path.name for path in committed.glob("*.yaml")) == sorted(FILES), "run `agora manifests`"
    for name, objects in FILES.items():
        assert (committed / name).read_text() == manifests.render(objects), f"deploy/k8s/{name}: run `agora manifests`"


def test_agora_manifests_writes_the_files_and_drops_a_removed_services(tmp_path: Path) -> None:
    (tmp_path / "retired.yaml").write_text(manifests.render([]))
    (tmp_path / "hand-written.yaml").write_text("kind: ConfigMap\n")
    result = CliRunner().invoke(app, ["manifests", "--out", str(tmp_path), "--tag", "1.2.3"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.glob("*.yaml")) == sorted([*FILES, "hand-written.yaml"])
    written = list(yaml.safe_load_all((tmp_path / "catalog.yaml").read_text()))
    assert written[0]["spec"]["template"]["spec"]["containers"][0]["image"] == "agora/catalog:1.2.3"


def test_the_image_points_the_chassis_at_the_files_it_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    containerfile = (REPO / "deploy" / "Containerfile").read_text()

    def copied_to(source: str) -> str:
        assert (REPO / source).exists()
        [destination] = [line.split()[-1] for line in containerfile.splitlines() if line.startswith(f"COPY {source} ")]
        return destination.rstrip("/")

    events = copied_to("contracts/events/")
    assert f"AGORA_CONTRACTS_DIR={events}" in containerfile
    monkeypatch.setenv("AGORA_CONTRACTS_DIR", events)
    assert contracts_dir() == Path(events)  # the variable the chassis reads
    assert f"{RESILIENCE_FILE_VARIABLE}={copied_to('deploy/resilience.toml')}" in containerfile
