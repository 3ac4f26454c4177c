"""`python -m bench.connection_memory [CONNECTIONS]`: what one idle WebSocket connection holds, by source line.

A real gateway (embedded nats-server) runs in this process under `tracemalloc`; a child process
opens the connections (authenticated, one subscription each) and holds them. The difference of
two snapshots, divided by the connection count, says which lines of the gateway and of aiohttp
keep memory per connection, and how many objects the garbage collector must walk for each, and
how long a full collection takes with them (it stops every delivery while it runs).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from aiohttp import web

from notifier.app import GATEWAY, create_app
from notifier.jetstream.embedded_server import EmbeddedNatsServer
from notifier.settings import Settings
from notifier.transport.auth import Authenticator

# One token per connection, each for its own user, as in the bench's idle scenario: identical URLs
# share their parse (yarl caches it), which once hid 1.7 KB per connection from this tool.
CLIENT = """
import asyncio, sys, aiohttp
async def main(port, token_file):
    tokens = open(token_file).read().split()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        held, gate = [], asyncio.Semaphore(100)
        async def open_one(token):
            async with gate:
                websocket = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?token={token}")
                await websocket.send_str('{"action":"subscribe","channels":["market.ticker"]}')
                await websocket.receive()  # the ack
                held.append(websocket)
        await asyncio.gather(*(open_one(token) for token in tokens))
        print("ready", flush=True)
        await asyncio.get_running_loop().create_future()  # hold them until killed
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""
TOP_LINES = 25


async def measure(connections: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        nats = EmbeddedNatsServer(Path(directory) / "nats")
        await nats.start()
        settings = Settings(nats_url=nats.url, data_dir=Path(directory) / "gateway", port=0,
                            jwt_secret="connection-memory-secret-long-enough-for-hs256")
        authenticator = Authenticator.from_settings(settings)
        runner = web.AppRunner(create_app(settings, authenticator), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        client = None
        try:
            port = site._server.sockets[0].getsockname()[1]
            async with asyncio.timeout(30):
                await runner.app[GATEWAY].following.wait()
            token_file = Path(directory) / "tokens"
            token_file.write_text("\n".join(authenticator.issue(f"user-{index}", [], 3600)
                                            for index in range(connections)))
            gc.collect()
            gc.freeze()  # as `notifier serve` does once it follows the streams
            tracemalloc.start(1)
            before = tracemalloc.take_snapshot()
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, str(port), str(token_file), stdout=asyncio.subprocess.PIPE)
            async with asyncio.timeout(120):
                ready = await client.stdout.readline()
            if ready.strip() != b"ready":
                raise RuntimeError("the client process did not open its connections")
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
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
            await nats.stop()


def report(differences: list, connections: int) -> None:
    total = sum(difference.size_diff for difference in differences)
    ours = sum(difference.size_diff for difference in differences if "/notifier/" in difference.traceback[0].filename)
    print(f"{connections} connections: {total / connections:,.0f} bytes traced per connection, "
          f"{ours / connections:,.0f} of them allocated by notifier/")
    for difference in differences[:TOP_LINES]:
        frame = difference.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("/notifier/")[-1]
        print(f"{difference.size_diff / connections:8.0f} B {difference.count_diff / connections:6.2f} objects  "
              f"{where}:{frame.lineno}")


def main(argv: list[str]) -> int:
    asyncio.run(measure(int(argv[0]) if argv else 1000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
