"""The command loop both worker processes share: commands in on a pipe, one answer out per command.

Each command `(name, arguments)` runs `do_<name>(**arguments)` and is answered with
`("ok", result)` or `("error", traceback)`; `quit` runs `on_quit()` and ends the loop.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from multiprocessing.connection import Connection


class CommandWorker:
    """Reads pickled commands from the harness's pipe and runs them one at a time."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.commands: asyncio.Queue = asyncio.Queue()

    async def on_quit(self) -> None:
        """Release what the worker holds before the process exits."""

    async def run(self) -> None:
        asyncio.get_running_loop().add_reader(self.connection.fileno(), self._readable)
        self.connection.send(("ready", None))
        while True:
            name, arguments = await self.commands.get()
            os.set_blocking(self.connection.fileno(), True)
            if name == "quit":
                await self.on_quit()
                return
            try:
                self.connection.send(("ok", await getattr(self, "do_" + name)(**arguments)))
            except Exception:  # noqa: BLE001 - any failure goes back to the harness, which stops the scenario
                self.connection.send(("error", traceback.format_exc()))

    def _readable(self) -> None:
        # uvloop makes a watched fd non-blocking; a pickled command must be read (and an answer
        # written) whole, so the pipe goes back to blocking: the other end always writes promptly.
        os.set_blocking(self.connection.fileno(), True)
        try:
            while self.connection.poll():
                self.commands.put_nowait(self.connection.recv())
        except EOFError:
            # The harness is gone: stop rather than linger as an orphan.
            asyncio.get_running_loop().remove_reader(self.connection.fileno())
            self.commands.put_nowait(("quit", {}))
