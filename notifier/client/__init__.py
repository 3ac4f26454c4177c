"""A Python client of the gateway for bots and internal tools: the WebSocket protocol with exact resume.

    from notifier.client import connect

    async with connect("http://127.0.0.1:8080", token=get_token) as client:
        async for event in client.subscribe("order.*"):
            print(event.id, event.channel, event.data["payload"])
        # elsewhere: `async for alert in client.broadcasts()`, the broadcast types (alert.system)
        # that the gateway sends to every connection whatever it subscribed to

The same semantics as the browser client (`clients/js/notifier.js`): one WebSocket carries every
subscription; after any disconnect it subscribes again with `since` = the `id` of the last event
it handed over, so each subscription yields every event once, in order; `token` is a string or a
function returning one (or an awaitable of one), called for every connection and again before the
token's `exp` to refresh it over the open connection, and right away after a `token expired`
close; reconnects wait a random time under a capped exponential bound (full jitter); the client
pings the gateway and reconnects when nothing comes back.

This is the HTTP side: it talks to the gateway over HTTP, never to NATS.
"""

from notifier.client.connection import EVENT_NAMES, Client, Listener, TokenSource, connect
from notifier.client.streams import QUEUE_SIZE, Broadcasts, Event, NotifierError, Subscription, backoff_delay, token_expiry

__all__ = [
    "EVENT_NAMES", "QUEUE_SIZE", "Broadcasts", "Client", "Event", "Listener", "NotifierError", "Subscription",
    "TokenSource", "backoff_delay", "connect", "token_expiry",
]
