"""`python -m notifier`, `notifier publish` and `notifier token` as a developer runs them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import sys
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import jwt
import nats
import pytest

from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.jetstream.streams import apply_streams, load_streams
from notifier.settings import Settings, default_streams_dir
from notifier.transport.auth import Authenticator

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy

START_TIMEOUT = 60.0


class ServeProcess:
    """`python -m notifier` in a child process, with the URL and dev token it printed."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.token = ""
        self.output: list[str] = []

    def environment(self) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
        environment.update(NOTIFIER_DATA_DIR=str(self.data_dir), NOTIFIER_PORT="0", NOTIFIER_LOG_LEVEL="WARNING")
        return environment

    async def start(self) -> None:
        self.base_url = self.token = ""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", env=self.environment(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(START_TIMEOUT):
            while not self.token:
                line = (await self.process.stdout.readline()).decode()
                assert line, "notifier exited early:\n" + "".join(self.output)
                self.output.append(line)
                if found := re.match(r"notifier serving on (\S+)", line):
                    self.base_url = found.group(1)
                if found := re.match(r"\s+dev token\s+(\S+)", line):
                    self.token = found.group(1)

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT):
            await self.process.communicate()
        return self.process.returncode


@pytest.fixture
async def served(tmp_path):
    server = ServeProcess(tmp_path / "var")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _run_command(*arguments: str, data_dir: Path, environment: dict[str, str] | None = None) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    env.update(NOTIFIER_DATA_DIR=str(data_dir), **(environment or {}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", *arguments, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(START_TIMEOUT):
        output, _ = await process.communicate()
    return process.returncode, output.decode()


async def test_serve_starts_embedded_nats_and_is_ready(served):
    """With no NOTIFIER_NATS_URL, `python -m notifier` starts its own nats-server and `/readyz` is 200."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.base_url}/readyz") as response:
            assert response.status == 200
    assert any(line.strip().startswith("NATS") and "nats://127.0.0.1:" in line for line in served.output)


async def test_printed_dev_token_and_cli_publish_reach_a_websocket(served):
    """The printed token opens a WebSocket, and `notifier publish` delivers an event to it."""
    async with aiohttp.ClientSession() as http:
        websocket_url = served.base_url.replace("http", "ws") + f"/ws?token={served.token}&channels=order.event"
        async with http.ws_connect(websocket_url) as websocket:
            assert json.loads((await websocket.receive(timeout=10)).data)["action"] == "ack"
            code, output = await _run_command("publish", "order.event", "--payload", '{"qty": 5}', "--key",
                                              "BTC/USDT", data_dir=served.data_dir)
            assert code == 0, output
            event = json.loads((await websocket.receive(timeout=10)).data)
    assert event["channel"] == "order.event:BTC/USDT"
    assert event["data"]["payload"] == {"qty": 5}
    assert event["data"]["id"] == json.loads(output.strip().splitlines()[-1])["id"]


async def test_embedded_nats_refuses_a_client_without_its_token(served):
    """A local client that knows only the embedded nats-server's port is refused with `Authorization Violation`."""
    nats_url = urlsplit((served.data_dir / "nats-url").read_text().strip())
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(f"nats://{nats_url.hostname}:{nats_url.port}", allow_reconnect=False, connect_timeout=5)


async def test_nats_url_file_is_readable_by_its_owner_only(served):
    """`<data dir>/nats-url`, which carries the embedded nats-server's token, has mode 0600."""
    assert stat.S_IMODE((served.data_dir / "nats-url").stat().st_mode) == 0o600


async def test_output_names_the_embedded_nats_without_its_token(served):
    """The banner's NATS line shows host and port, and the token from `nats-url` appears nowhere in the output."""
    nats_url = urlsplit((served.data_dir / "nats-url").read_text().strip())
    assert nats_url.username, "nats-url carries no token"
    nats_line = next(line for line in served.output if line.strip().startswith("NATS"))
    assert f"nats://127.0.0.1:{nats_url.port}" in nats_line
    assert nats_url.username not in "".join(served.output)


async def test_sigterm_stops_the_gateway_and_its_nats_server(served):
    """SIGTERM ends `python -m notifier` with exit code 0 and stops the embedded nats-server."""
    nats_url = urlsplit((served.data_dir / "nats-url").read_text().strip())
    assert await served.stop() == 0
    with pytest.raises(OSError):
        await asyncio.open_connection(nats_url.hostname, nats_url.port)
    assert not (served.data_dir / "nats-url").exists()


async def test_history_survives_a_restart_of_the_embedded_default(tmp_path):
    """Events stored before a restart of `python -m notifier` are in its history afterwards."""
    server = ServeProcess(tmp_path / "var")
    await server.start()
    code, output = await _run_command("publish", "alert.price", "--payload", '{"level": 1}', data_dir=server.data_dir)
    assert code == 0, output
    await server.stop()
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.base_url}/api/history", params={"channels": "alert.price"},
                                headers={"Authorization": f"Bearer {server.token}"}) as response:
                body = await response.json()
    finally:
        await server.stop()
    assert [event["data"]["payload"] for event in body["events"]] == [{"level": 1}]


async def test_token_command_signs_with_configured_secret(tmp_path):
    """`notifier token SUB --role R --ttl S` prints a JWT with those claims, signed with NOTIFIER_JWT_SECRET."""
    secret = "cli-test-secret-long-enough-for-hs256"
    code, output = await _run_command("token", "alice", "--role", "publisher", "--role", "admin", "--ttl", "60",
                                      data_dir=tmp_path, environment={"NOTIFIER_JWT_SECRET": secret})
    assert code == 0, output
    identity = Authenticator(secret=secret).verify(output.strip())
    assert identity.user_id == "alice" and identity.roles == {"publisher", "admin"}
    claims = jwt.decode(output.strip(), secret, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60


async def test_generated_secret_refuses_non_loopback_host(tmp_path):
    """Without a configured key, binding a non-loopback address is refused with exit code 2."""
    code, output = await _run_command(data_dir=tmp_path, environment={"NOTIFIER_HOST": "0.0.0.0"})
    assert code == 2
    assert "NOTIFIER_JWT_SECRET" in output


async def test_bad_environment_value_names_the_variable(tmp_path):
    """A non-numeric NOTIFIER_PORT is refused naming the variable."""
    code, output = await _run_command(data_dir=tmp_path, environment={"NOTIFIER_PORT": "eighty"})
    assert code == 2
    assert "NOTIFIER_PORT='eighty'" in output


async def test_unknown_event_loop_is_refused_naming_the_choices(tmp_path):
    """NOTIFIER_EVENT_LOOP other than uvloop or asyncio exits 2 naming the variable and the choices."""
    code, output = await _run_command(data_dir=tmp_path, environment={"NOTIFIER_EVENT_LOOP": "trio"})
    assert code == 2
    assert "NOTIFIER_EVENT_LOOP='trio': expected one of uvloop, asyncio" in output


async def test_broken_stream_definition_exits_2_naming_the_file(tmp_path):
    """A stream definition with an unknown storage kind stops start-up with exit code 2 naming the file."""
    streams = tmp_path / "streams"
    streams.mkdir()
    (streams / "only.toml").write_text('name = "X"\ncursor_id = "x"\nsubject_root = "x"\ntypes = [">"]\n'
                                       'default = true\n[jetstream]\nstorage = "tape"\n')
    code, output = await _run_command(data_dir=tmp_path, environment={"NOTIFIER_STREAMS_DIR": str(streams)})
    assert code == 2
    assert "only.toml: jetstream.storage" in output


def test_port_variable_is_used_when_notifier_port_is_unset():
    """Platforms that run the Procfile set PORT; the gateway listens there when NOTIFIER_PORT is unset."""
    assert Settings.from_environment({"PORT": "5055"}).port == 5055
    assert Settings.from_environment({"PORT": "5055", "NOTIFIER_PORT": "6066"}).port == 6066


async def test_publish_with_id_stores_that_id_so_a_retry_is_deduplicated(nats_server, tmp_path):
    """`notifier publish --id X` stores id X; the same command again is reported a duplicate of it."""
    client = await nats.connect(nats_server.url)
    await apply_streams(client.jetstream(), load_streams(default_streams_dir()))
    await client.close()
    environment = {"NOTIFIER_NATS_URL": nats_server.url}
    first = await _run_command("publish", "order.event", "--id", "retry-7", data_dir=tmp_path, environment=environment)
    again = await _run_command("publish", "order.event", "--id", "retry-7", data_dir=tmp_path, environment=environment)
    assert first[0] == 0 and json.loads(first[1])["id"] == "retry-7" and json.loads(first[1])["duplicate"] is False
    assert again[0] == 0 and json.loads(again[1])["duplicate"] is True


async def test_publish_that_nats_does_not_confirm_names_the_id_to_retry_with(tmp_path):
    """With NATS unreachable, `notifier publish` exits 1 and says which `--id` to retry with."""
    code, output = await _run_command("publish", "order.event", "--id", "retry-8", data_dir=tmp_path,
                                      environment={"NOTIFIER_NATS_URL": "nats://127.0.0.1:9"})
    assert code == 1 and "retry with --id retry-8" in output


async def test_publish_over_max_payload_exits_2_naming_the_limit_and_stores_nothing(tmp_path):
    """Against a nats-server taking 4 KiB messages, an 8 KB event exits 2 with `too large`-style advice, not 1 "retry"."""
    async with EmbeddedNatsServer(tmp_path / "nats", max_payload=4096) as server:
        client = await nats.connect(server.url)
        await apply_streams(client.jetstream(), load_streams(default_streams_dir()))
        payload = json.dumps({"level": "INFO", "type": "size", "message": "m", "details": {"blob": "z" * 8192}})
        code, output = await _run_command("publish", "risk.alert", "--payload", payload, data_dir=tmp_path,
                                          environment={"NOTIFIER_NATS_URL": server.url})
        stored = (await client.jetstream().stream_info("NOTIFIER_ACCOUNT")).state.messages
        await client.close()
    assert code == 2, output
    assert "the event store takes at most" in output and "retry" not in output
    assert stored == 0
