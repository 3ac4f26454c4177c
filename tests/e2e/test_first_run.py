"""A developer's first run: helpers run from another folder, a second gateway on one data dir, --help, errors."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from notifier.settings import Settings, default_streams_dir

# Starts browsers, gateway processes or the chaos checker: `pytest -m "heavy and not slow"` (.ci/run runs it).
pytestmark = pytest.mark.heavy

COMMAND_TIMEOUT = 60.0


def _environment(**variables: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "PORT" and not key.startswith("NOTIFIER_")}
    environment.update(variables)
    return environment


async def _run(*arguments: str, cwd: Path, **variables: str) -> tuple[int, str, str]:
    """Run `python -m notifier ARGUMENTS` in `cwd`; exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", *arguments, cwd=cwd, env=_environment(**variables),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(COMMAND_TIMEOUT):
        stdout, stderr = await process.communicate()
    return process.returncode, stdout.decode(), stderr.decode()


class Served:
    """`python -m notifier` in `cwd` with the default data dir (`./var`), until stopped."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.output: list[str] = []

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "notifier", cwd=self.cwd,
            env=_environment(NOTIFIER_PORT="0", NOTIFIER_LOG_LEVEL="WARNING"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(COMMAND_TIMEOUT):
            while True:
                line = (await self.process.stdout.readline()).decode()
                assert line, "notifier exited early:\n" + "".join(self.output)
                self.output.append(line)
                if found := re.match(r"notifier serving on (\S+)", line):
                    self.base_url = found.group(1)
                if line.strip().startswith("data dir"):
                    return

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await self.process.communicate()
        return self.process.returncode


@pytest.fixture
async def served(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    server = Served(project)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_token_from_another_folder_says_where_it_looked_and_what_to_set(served, tmp_path):
    """`notifier token` run outside the gateway's folder names the secret file it looked for and NOTIFIER_DATA_DIR."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, stdout, stderr = await _run("token", "alice", cwd=elsewhere)
    assert code == 2 and stdout == ""
    assert str(elsewhere / "var" / "jwt-dev-secret") in stderr
    assert "NOTIFIER_DATA_DIR" in stderr and "NOTIFIER_JWT_SECRET" in stderr


async def test_publish_from_another_folder_says_where_it_looked_and_what_to_set(served, tmp_path):
    """`notifier publish` run outside the gateway's folder names the nats-url file it looked for and NOTIFIER_DATA_DIR."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, stdout, stderr = await _run("publish", "order.event", cwd=elsewhere)
    assert code == 2 and stdout == ""
    assert str(elsewhere / "var" / "nats-url") in stderr
    assert "NOTIFIER_DATA_DIR" in stderr and "NOTIFIER_NATS_URL" in stderr


async def test_token_with_the_printed_data_dir_works_from_another_folder(served, tmp_path):
    """The `data dir` line the gateway prints is what NOTIFIER_DATA_DIR needs for `notifier token` elsewhere."""
    data_dir = next(line.split(None, 2)[2].strip() for line in served.output if line.strip().startswith("data dir"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, stdout, stderr = await _run("token", "alice", cwd=elsewhere, NOTIFIER_DATA_DIR=data_dir)
    assert code == 0, stderr
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.base_url}/api/history", params={"channels": "order.*"},
                            headers={"Authorization": f"Bearer {stdout.strip()}"}) as response:
            assert response.status == 200


async def test_second_gateway_on_the_same_data_dir_is_refused(served):
    """A second `python -m notifier` in the same folder exits 2 naming the data dir and NOTIFIER_DATA_DIR."""
    code, stdout, stderr = await _run(cwd=served.cwd, NOTIFIER_PORT="0")
    assert code == 2
    assert stderr.startswith("error: another notifier")
    assert str((served.cwd / "var").resolve()) in stderr and "NOTIFIER_DATA_DIR" in stderr
    assert "notifier waiting for NATS" not in stdout


async def test_refused_second_gateway_leaves_the_first_ones_files_and_service(served):
    """After a refused second start, the first gateway's nats-url and jwt-dev-secret remain and it stays ready."""
    data_dir = served.cwd / "var"
    before = {name: (data_dir / name).read_text() for name in ("nats-url", "jwt-dev-secret")}
    code, _, _ = await _run(cwd=served.cwd, NOTIFIER_PORT="0")
    assert code == 2
    assert {name: (data_dir / name).read_text() for name in before} == before
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.base_url}/readyz") as response:
            assert response.status == 200


async def test_data_dir_lock_is_released_on_exit(tmp_path):
    """Once a gateway has stopped, another one starts on the same data dir."""
    project = tmp_path / "project"
    project.mkdir()
    first = Served(project)
    await first.start()
    assert await first.stop() == 0
    second = Served(project)
    await second.start()
    assert await second.stop() == 0


async def test_serve_help_lists_every_setting_with_its_variable_and_default(tmp_path):
    """`notifier serve --help` names every NOTIFIER_* variable settings.py reads, with its default."""
    code, stdout, _ = await _run("serve", "--help", cwd=tmp_path)
    assert code == 0
    for name in Settings.__dataclass_fields__:
        assert f"NOTIFIER_{name.upper()}" in stdout, name
    assert re.search(r"NOTIFIER_PORT .*\(default: 8080\)", stdout)
    assert re.search(r"NOTIFIER_OUTBOX_BYTES .*\(default: 1048576\)", stdout)
    assert "NOTIFIER_LOG_LEVEL" in stdout and "NOTIFIER_LOG_FORMAT" in stdout


async def test_version_prints_the_package_version(tmp_path):
    """`notifier --version` prints `notifier <version>`."""
    code, stdout, _ = await _run("--version", cwd=tmp_path)
    assert code == 0
    assert re.fullmatch(r"notifier \d+\.\d+\.\d+\S*\n", stdout)


async def test_short_jwt_secret_is_refused_at_start(tmp_path):
    """A NOTIFIER_JWT_SECRET shorter than 32 bytes stops start-up with exit 2 and says how long it must be."""
    code, stdout, stderr = await _run(cwd=tmp_path, NOTIFIER_JWT_SECRET="short-secret", NOTIFIER_PORT="0")
    assert code == 2
    assert stderr.strip() == ("error: NOTIFIER_JWT_SECRET is 12 bytes: HS256 needs at least 32 "
                              "(e.g. `openssl rand -hex 32`)")
    assert "waiting for NATS" not in stdout


async def test_unknown_path_answers_json_404(gateway):
    """A path no route serves answers 404 with the JSON error body."""
    async with gateway.http.get(f"{gateway.base_url}/no/such/thing") as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        assert (await response.json()) == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_wrong_method_answers_json_405_with_allow(gateway):
    """A method a route does not serve answers 405 with the JSON error body and an Allow header."""
    async with gateway.http.delete(f"{gateway.base_url}/api/publish") as response:
        assert response.status == 405
        assert response.content_type == "application/json"
        assert (await response.json()) == {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}
        assert "POST" in response.headers["Allow"]


class _Lines(logging.Handler):
    """Collects log messages and wakes a waiter when one matches."""

    def __init__(self, pattern: str, count: int):
        super().__init__(logging.WARNING)
        self.pattern = re.compile(pattern)
        self.count = count
        self.matched: list[str] = []
        self.enough = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.pattern.search(message):
            self.matched.append(message)
            if len(self.matched) >= self.count:
                self.enough.set()


async def test_unreachable_nats_is_retried_with_growing_waits_naming_the_url(make_gateway, nats_server):
    """While NATS refuses connections, each failure is logged once with the URL (no token) and a wait that doubles."""
    url = f"nats://127.0.0.1:{nats_server.port}"
    await nats_server.stop()
    lines = _Lines(r"^nats: cannot connect to ", 3)
    logger = logging.getLogger("notifier.jetstream.connection")
    logger.addHandler(lines)
    try:
        await make_gateway(wait_following=False)
        async with asyncio.timeout(30):
            await lines.enough.wait()
    finally:
        logger.removeHandler(lines)
    assert all(line.startswith(f"nats: cannot connect to {url} (") for line in lines.matched)
    waits = [re.search(r"retrying in (\S+) s$", line).group(1) for line in lines.matched[:3]]
    assert waits == ["0.5", "1.0", "2.0"]


async def test_start_up_output_names_the_permissions_file(served):
    """Right after `data dir`, the gateway prints the channel permissions file it loaded (the shipped one)."""
    async with asyncio.timeout(COMMAND_TIMEOUT):
        line = (await served.process.stdout.readline()).decode()
    assert line.split() == ["permissions", str(default_streams_dir() / "permissions.toml")]
