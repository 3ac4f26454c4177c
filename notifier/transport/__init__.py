"""The HTTP side: aiohttp handlers for WebSocket, SSE and the HTTP API. Never imports nats."""
