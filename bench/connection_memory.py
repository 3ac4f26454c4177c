"""`python -m bench.connection_memory [CONNECTIONS] [--ceiling] [--rss]`: what one idle WebSocket holds, by source line.

A real gateway (embedded nats-server), or with `--ceiling` the bench's ceiling (bare aiohttp, one
handler per WebSocket), runs in this process on uvloop (as `notifier serve` does) under
`tracemalloc`; a child process opens the connections the way the bench's idle scenario does
(its own token and user each, channels in the URL, the five handshake headers) and holds them.
The difference of two snapshots, taken after a first 1 % of the connections and after all of
them, divided by the connections between, says which lines of the gateway and of aiohttp keep
memory per connection, and how many objects the garbage collector must walk for each, and how
long a full collection takes with them (it stops every delivery while it runs).

`--rss` skips `tracemalloc` (whose own records would inflate it) and reports the process's RSS
delta per connection instead: what the traced figure does not see is C-level memory (uvloop's
and libuv's handles, aiohttp's C parsers, the kernel-side socket is not in it) and the slack
of the allocators.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import psutil
import uvloop
from aiohttp import web

from notifier.app import GATEWAY, create_app
from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.settings import Settings
from notifier.transport.auth import Authenticator

CHANNEL = "alert.idle"
# The bench's load clients (bench/protocols.py): one request per connection, each with its own
# token (identical URLs share their parse, which once hid 1.7 KB per connection from this tool),
# then the `ack` of the URL's channels. The child holds the first batch, says so, waits for a
# line, opens the rest and says so again.
CLIENT = """
import asyncio, base64, os, sys
async def open_one(port, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\nUpgrade: websocket\\r\\n"
                  f"Connection: Upgrade\\r\\nSec-WebSocket-Key: {key}\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n").encode())
    received = b""
    while b'"ack"' not in received:
        chunk = await reader.read(4096)
        if not chunk:
            raise ConnectionError(received[:200])
        received += chunk
    return writer
async def main(port, path_file, first):
    paths = open(path_file).read().split()
    gate, held = asyncio.Semaphore(100), []
    async def limited(path):
        async with gate:
            held.append(await open_one(port, path))
    await asyncio.gather(*(limited(path) for path in paths[:first]))
    print("first", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(limited(path) for path in paths[first:]))
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()  # hold them until killed
asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
"""
TOP_LINES = 40
SECRET = "connection-memory-secret-long-enough-for-hs256"


async def measure(connections: int, ceiling: bool, rss: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        nats = None
        authenticator = None
        if ceiling:
            from bench.baselines.ceiling import build_app
            app = build_app()
        else:
            nats = EmbeddedNatsServer(Path(directory) / "nats")
            await nats.start()
            settings = Settings(nats_url=nats.url, data_dir=Path(directory) / "gateway", port=0, jwt_secret=SECRET)
            authenticator = Authenticator.from_settings(settings)
            app = create_app(settings, authenticator)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        client = None
        try:
            port = runner.addresses[0][1]
            if not ceiling:
                async with asyncio.timeout(30):
                    await app[GATEWAY].following.wait()
            first = max(10, connections // 100)
            paths = [f"/ws?channels={CHANNEL}" + (f"&token={authenticator.issue(f'user-{index}', [], 3600)}"
                                                  if authenticator is not None else "")
                     for index in range(first + connections)]
            path_file = Path(directory) / "paths"
            path_file.write_text("\n".join(paths))
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, str(port), str(path_file), str(first),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            await expect(client, b"first")
            gc.collect()
            gc.freeze()  # as `notifier serve` does once it follows the streams
            process = psutil.Process()
            if not rss:
                tracemalloc.start(1)
                before = tracemalloc.take_snapshot()
            rss_before = process.memory_info().rss
            client.stdin.write(b"go\n")
            await expect(client, b"ready")
            gc.collect()
            rss_after = process.memory_info().rss
            name = "ceiling" if ceiling else "gateway"
            if rss:
                print(f"{name}, {connections} connections: RSS {(rss_after - rss_before) / connections:,.0f} bytes "
                      "per connection")
                return
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
            print(f"{name}:", end=" ")
            report(after.compare_to(before, "lineno"), connections)
            started = time.perf_counter()
            gc.collect()
            print(f"a full collection with {len(gc.get_objects()):,} tracked objects: "
                  f"{(time.perf_counter() - started) * 1000:.1f} ms")
        finally:
            if client is not None and client.returncode is None:
                client.kill()
                await client.wait()
            await runner.cleanup()
            if nats is not None:
                await nats.stop()


async def expect(client: asyncio.subprocess.Process, line: bytes) -> None:
    async with asyncio.timeout(300):
        said = await client.stdout.readline()
    if said.strip() != line:
        raise RuntimeError("the client process did not open its connections")


def report(differences: list, connections: int) -> None:
    total = sum(difference.size_diff for difference in differences)
    ours = sum(difference.size_diff for difference in differences if "/notifier/" in difference.traceback[0].filename)
    objects = sum(difference.count_diff for difference in differences)
    print(f"{connections} connections: {total / connections:,.0f} bytes traced per connection "
          f"({objects / connections:.1f} memory blocks), {ours / connections:,.0f} of them allocated by notifier/")
    for difference in differences[:TOP_LINES]:
        frame = difference.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("/notifier/")[-1].split("/lib/python3")[-1]
        print(f"{difference.size_diff / connections:8.0f} B {difference.count_diff / connections:6.2f} objects  "
              f"{where}:{frame.lineno}")


def main(argv: list[str]) -> int:
    numbers = [argument for argument in argv if not argument.startswith("--")]
    uvloop.run(measure(int(numbers[0]) if numbers else 1000, "--ceiling" in argv, "--rss" in argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
