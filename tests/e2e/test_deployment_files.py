"""The Dockerfile and docker-compose.yml hold together: real settings, every NATS node, one JetStream cluster.

Docker itself is not needed: the files are parsed, their settings are read the way the gateway
reads them, and the nats-server command lines are parsed by the real nats-server binary.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from notifier import settings as settings_module
from notifier.app import create_app
from notifier.cli import _parser
from notifier.jetstream.embedded_server import find_nats_server
from notifier.settings import Settings, variables
from notifier.transport.auth import Authenticator

yaml = pytest.importorskip("yaml", reason="pyyaml is not installed: docker-compose.yml is NOT checked "
                                          "(pip install -e '.[dev]' installs it)")

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SECRET = "a-secret-standing-in-for-the-one-compose-asks-for"
NATS_CLIENT_PORT = 4222
NATS_CLUSTER_PORT = 6222


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions


def dockerfile_environment() -> dict[str, str]:
    environment = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            environment.update(item.split("=", 1) for item in shlex.split(arguments))
    return environment


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services(kind: str) -> dict[str, dict]:
    """The compose services built from this repository (`gateway`) or running the nats image (`nats`)."""
    chosen = {}
    for name, service in compose()["services"].items():
        is_gateway = service.get("build") == "."
        if (kind == "gateway") == is_gateway and (is_gateway or service.get("image", "").startswith("nats:")):
            chosen[name] = service
    return chosen


def container_environment(service: dict) -> dict[str, str]:
    """What a gateway container sees: the image's ENV, then the service's, with the required secret given."""
    environment = {**dockerfile_environment(), **{key: str(value) for key, value in service["environment"].items()}}
    if environment["NOTIFIER_JWT_SECRET"].startswith("${NOTIFIER_JWT_SECRET:?"):
        environment["NOTIFIER_JWT_SECRET"] = SECRET
    return environment


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_compose_file_has_three_nats_nodes_and_two_gateways():
    """docker-compose.yml defines three nats services and two gateway replicas on different host ports."""
    gateways = services("gateway")
    assert len(services("nats")) == 3 and len(gateways) == 2
    host_ports = [port.split(":")[0] for service in gateways.values() for port in service["ports"]]
    assert len(set(host_ports)) == 2, host_ports


def test_every_gateway_gets_every_nats_node_and_r3_streams():
    """Each gateway's settings, read as the gateway reads them, name all three nodes and 3 stream replicas."""
    nodes = {f"nats://{name}:{NATS_CLIENT_PORT}" for name in services("nats")}
    for name, service in services("gateway").items():
        settings = Settings.from_environment(container_environment(service))
        assert set(settings.nats_servers) == nodes, name
        assert settings.stream_replicas == 3, name
        assert settings.host == "0.0.0.0", name


def test_the_nats_nodes_form_one_jetstream_cluster():
    """Every node runs JetStream in the same cluster, under its own name, with routes to the two others."""
    nodes = services("nats")
    cluster_names, server_names = set(), set()
    for name, service in nodes.items():
        command = service["command"]
        assert "--jetstream" in command, name
        cluster_names.add(option(command, "--cluster_name"))
        server_names.add(option(command, "--server_name"))
        assert option(command, "--cluster").endswith(f":{NATS_CLUSTER_PORT}"), name
        routes = set(option(command, "--routes").split(","))
        assert routes == {f"nats://{other}:{NATS_CLUSTER_PORT}" for other in nodes if other != name}, name
    assert len(cluster_names) == 1 and len(server_names) == 3


@pytest.mark.parametrize("node", ["nats1", "nats2", "nats3"])
def test_nats_server_accepts_each_nodes_command_line(node):
    """The real nats-server parses every flag of the node's command (it stops only for the missing config file)."""
    command = services("nats")[node]["command"]
    result = subprocess.run([find_nats_server(), "-t", *command], capture_output=True, text=True, timeout=30)
    output = result.stdout + result.stderr
    assert "flag provided but not defined" not in output and "must specify [-c, --config]" in output, output


def test_every_notifier_variable_named_is_a_real_setting():
    """Each NOTIFIER_* name in the Dockerfile and docker-compose.yml is one the gateway, or setup.py at build, reads."""
    known = {name for name, _, _ in variables()} | set(re.findall(r"NOTIFIER_[A-Z_]+", (ROOT / "setup.py").read_text()))
    named = set(re.findall(r"NOTIFIER_[A-Z_]+", DOCKERFILE.read_text() + COMPOSE.read_text()))
    assert named and named <= known, sorted(named - known)


def test_the_image_runs_notifier_serve_as_a_non_root_user():
    """The image's command is `notifier serve` (a real subcommand) and its USER is not root."""
    instructions = dockerfile_instructions()
    command = json.loads(next(arguments for keyword, arguments in instructions if keyword == "CMD"))
    assert command == ["notifier", "serve"]
    assert _parser().parse_args(command[1:]).command == "serve"
    user = [arguments for keyword, arguments in instructions if keyword == "USER"][-1]
    assert user not in ("root", "0")


def test_the_healthcheck_probes_a_real_endpoint_on_the_served_port():
    """HEALTHCHECK asks /healthz, a GET route of the gateway, on NOTIFIER_PORT, which EXPOSE opens."""
    instructions = dockerfile_instructions()
    healthcheck = next(arguments for keyword, arguments in instructions if keyword == "HEALTHCHECK")
    path = re.search(r"127\.0\.0\.1:%s(/[a-z]+)", healthcheck).group(1)
    settings = Settings(jwt_secret=SECRET)
    routes = {resource.canonical for resource in create_app(settings, Authenticator(SECRET)).router.resources()}
    assert path == "/healthz" and path in routes
    exposed = next(arguments for keyword, arguments in instructions if keyword == "EXPOSE")
    assert exposed == dockerfile_environment()["NOTIFIER_PORT"]


def test_a_non_editable_install_reads_the_checkout_folders_from_the_working_directory(monkeypatch, tmp_path):
    """With no `clients/` beside the installed package (site-packages), `./clients` of the working directory is used."""
    monkeypatch.setattr(settings_module, "PACKAGE_ROOT", tmp_path / "site-packages" / "notifier")
    monkeypatch.chdir(tmp_path)
    assert settings_module.checkout_folder("clients") == tmp_path / "clients"
    assert settings_module.default_streams_dir() == tmp_path / "streams_config"


def test_only_nats1_client_port_is_published_and_on_loopback_only():
    """`notifier demo` and `publish` on the host reach nats1 at 127.0.0.1:4222; no node's port is public."""
    published = {name: service.get("ports", []) for name, service in services("nats").items()}
    assert published == {"nats1": [f"127.0.0.1:{NATS_CLIENT_PORT}:{NATS_CLIENT_PORT}"], "nats2": [], "nats3": []}
