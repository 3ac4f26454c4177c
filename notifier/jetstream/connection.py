"""Connecting to NATS the way a long-running gateway must: retry the first connect, reconnect forever."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client

from notifier.ops import metrics

log = logging.getLogger(__name__)

_CRLF = b"\r\n"
# Between attempts to reach an unreachable NATS: doubled after each failure, from the first to the cap.
RECONNECT_WAIT = 0.5
RECONNECT_WAIT_CAP = 5.0


class GatewayClient(Client):
    """nats-py's client with a faster header parser.

    Every stored event carries headers (`Nats-Msg-Id`, and six more on a direct get), and
    nats-py checks each header name character by character in a generator: measured at about
    a third of the gateway's CPU in a resume storm. Same rules, using bytes methods instead.
    """

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        headers: dict[str, str] = {}
        for line in raw.split(_CRLF):
            name, separator, value = line.partition(b":")
            if not separator:
                continue
            name = name.strip()
            # Header names are tokens: no whitespace inside, ASCII only (as nats-py requires).
            if not name or not name.isascii() or len(name.split()) != 1:
                continue
            headers[name.decode("ascii")] = value.strip().decode("utf-8", "replace")
        return headers


async def connect_nats(
    servers: list[str],
    name: str,
    client: Client | None = None,
    on_reconnected: Callable[[], Awaitable[None]] | None = None,
    on_disconnected: Callable[[], Awaitable[None]] | None = None,
    connect_timeout: float = 5.0,
) -> Client:
    """Connect `client` (or a new one) with unlimited attempts, the first connect included.

    `on_reconnected` runs after each reconnect. While no server answers, the wait between attempts
    doubles from 0.5 s up to 5 s, and each failure is logged once with the server's URL and the
    wait, instead of a bare `Connection refused` every 0.5 s.
    """

    client = client or GatewayClient()  # before the callbacks below, which use it
    failures = [0]  # connection failures since the last successful connect
    # Named from our own list: nats-py's pool entries are private and changed class between releases
    # (an AttributeError here killed its consumer-recreation task and stalled the live feed).
    servers_named = named_servers(servers)

    async def error_callback(error: Exception) -> None:
        if not isinstance(error, (OSError, TimeoutError)):
            log.warning("nats: %s", error)
            return
        # nats-py sleeps this long before its next attempt on a server it tried recently: raising it is the back-off.
        wait = min(RECONNECT_WAIT_CAP, RECONNECT_WAIT * 2 ** min(failures[0], 8))
        failures[0] += 1
        client.options["reconnect_time_wait"] = wait
        log.warning("nats: cannot connect to %s (%s); retrying in %.1f s", servers_named, error, wait)

    async def reconnected_callback() -> None:
        failures[0] = 0
        client.options["reconnect_time_wait"] = RECONNECT_WAIT
        metrics.NATS_RECONNECTS.increment()
        log.info("nats: reconnected to %s", client.connected_url.netloc if client.connected_url else "?")
        if on_reconnected is not None:
            await on_reconnected()

    async def disconnected_callback() -> None:
        if client.is_closed or client.is_draining:
            log.debug("nats: disconnected on close")
        else:
            log.warning("nats: disconnected")
        if on_disconnected is not None:
            await on_disconnected()

    await client.connect(
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]  # annotated int; nats-py sleeps for it, float works
        allow_reconnect=True,
        connect_timeout=connect_timeout,  # type: ignore[arg-type]  # annotated int; nats-py waits for it, float works
        error_cb=error_callback,
        reconnected_cb=reconnected_callback,
        disconnected_cb=disconnected_callback,
    )
    failures[0] = 0
    client.options["reconnect_time_wait"] = RECONNECT_WAIT
    return client


def without_credentials(url: str) -> str:
    """A server URL fit for a log line or the banner: `user:password@` or `token@` left out."""
    scheme, separator, rest = url.rpartition("://")
    return f"{scheme}{separator}{rest.rpartition('@')[2]}"


def named_servers(servers: list[str] | str) -> str:
    """Server URLs (a list or a comma-separated string) joined for a log line or a message, credentials left out."""
    listed = servers.split(",") if isinstance(servers, str) else servers
    return ", ".join(without_credentials(server.strip()) for server in listed)
