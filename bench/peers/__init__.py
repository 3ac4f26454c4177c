"""Servers users would pick instead of the gateway, run in the same bench run: nats-server's WebSocket listener,
a Node `ws` broadcast server, python-socketio on aiohttp. `commands.py` says how each is started."""
