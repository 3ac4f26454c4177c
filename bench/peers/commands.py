"""How each peer is started, and what it does and does not do (stated beside its figures in the report)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.workers import BenchError
from notifier.jetstream.embedded_server import NatsServerError, find_nats_server

PEERS = ("nats_ws", "node_ws", "socketio")
PEERS_DIR = Path(__file__).resolve().parent
NPM_SECONDS = 300.0

# Beside each peer's figures: what it does and does not do that the gateway does.
DOES = {
    "notifier": "JWT auth, per-user routing and channel patterns, every event stored in JetStream, resume by "
                "cursor, bounded outbox per client (a slow client is closed)",
    "notifier_alt": "the gateway with the `--alternative` settings (a before/after in one run)",
    "naive": "no auth, no storage, no resume; unbounded queue per client; sends awaited one client after another",
    "ceiling": "no auth, no storage, no resume, no bound, no backpressure; frames built once, one write per client "
               "per loop turn (the limit)",
    "per_event": "as the ceiling, but one write per event per client (a reference row, not a limit)",
    "nats_ws": "nats-server's WebSocket listener (Go, every core), core NATS subjects (no JetStream): no auth here, "
               "no storage, no resume; a slow client is cut off as a slow consumer (64 MB pending)",
    "node_ws": "Node `ws`, the README's broadcast loop (one core): no auth, no storage, no resume; unbounded "
               "per-client buffer (`bufferedAmount`)",
    "socketio": "python-socketio rooms on aiohttp (one core): no auth here, no storage, no resume; Engine.IO "
                "heartbeats; unbounded per-client queue",
}


class PeerUnavailable(BenchError):
    """A peer cannot run on this machine (a tool is missing); the run skips it and says so."""


def node_ws_command() -> list[str]:
    """`node node_ws_server.js`, after installing `ws` into bench/peers/node_modules if it is not there yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PeerUnavailable("node_ws skipped: `node` or `npm` is not installed")
    if not (PEERS_DIR / "node_modules" / "ws").is_dir():
        print("[bench] installing the Node ws peer (npm install ws) ...", flush=True)
        try:
            completed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PEERS_DIR)],
                                       capture_output=True, text=True, timeout=NPM_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"node_ws skipped: `npm install ws` took over {NPM_SECONDS:.0f} s") from None
        if completed.returncode != 0:
            raise PeerUnavailable(f"node_ws skipped: `npm install ws` failed: {completed.stderr.strip()[-300:]}")
    return [node, str(PEERS_DIR / "node_ws_server.js"), "--port", "0"]


def nats_ws_command(directory: Path) -> list[str]:
    """nats-server (the gateway's own binary) with a plain-text WebSocket listener, both on random ports."""
    try:
        binary = find_nats_server()
    except NatsServerError as error:
        raise PeerUnavailable(f"nats_ws skipped: {error}") from None
    config = directory / "nats-websocket.conf"
    config.write_text("listen: 127.0.0.1:-1\nwebsocket {\n  listen: \"127.0.0.1:-1\"\n  no_tls: true\n}\n")
    return [binary, "-c", str(config)]


def socketio_command() -> list[str]:
    return [sys.executable, "-m", "bench.peers.socketio_server", "--port", "0"]
