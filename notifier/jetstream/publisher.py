"""Publishing events into JetStream from Python services (and from the gateway's HTTP endpoint)."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client
from nats.errors import BadHeaderError, BadSubjectError, MaxPayloadError
from nats.js.api import Header
from nats.js.errors import APIError

from notifier.catalog import Catalog, load_catalog
from notifier.jetstream.connection import connect_nats
from notifier.jetstream.streams import StreamDefinition, StreamSet, load_streams
from notifier.jetstream.subjects import subject_for
from notifier.model.broker import PreparedEvent, PublishRefused, PublishResult, PublishUnconfirmed
from notifier.model.events import Envelope, encoded_within, validated
from notifier.settings import default_streams_dir

MESSAGE_ID_HEADER = "Nats-Msg-Id"


class Publisher:
    """Validates envelopes against the event catalog and stores them in the stream their type routes to.

    The envelope id travels as `Nats-Msg-Id`, so JetStream stores a retried publish once.
    """

    def __init__(self, client: Client, streams: StreamSet, source: str = "", owns_client: bool = False,
                 timeout: float = 5.0, catalog: Catalog | None = None):
        self.client = client
        self.jetstream = client.jetstream(timeout=timeout)
        self.streams = streams
        self.catalog = catalog or load_catalog()
        self.source = source
        self._owns_client = owns_client

    @classmethod
    async def connect(cls, servers: str | list[str], source: str = "", streams_dir: Path | None = None) -> Publisher:
        """Connect to NATS (a URL, comma-separated URLs or a list) and return a publisher that owns the connection."""
        if isinstance(servers, str):
            servers = [server.strip() for server in servers.split(",") if server.strip()]
        directory = streams_dir or default_streams_dir()
        streams = load_streams(directory)
        catalog = load_catalog(directory)
        client = await connect_nats(servers, name=f"notifier-publisher:{source or 'python'}")
        return cls(client, streams, source=source, owns_client=True, catalog=catalog)

    def max_body_bytes(self, event: Envelope) -> int:
        """The most bytes the event's encoded envelope may take: the server's `max_payload` less the headers.

        nats-server counts the header block in `max_payload` (measured: one byte over and it
        closes the connection, failing every publish and read sharing it until it reconnects).
        """
        return self.client.max_payload - _header_bytes(_headers(event, self.streams.for_type(event.type)))

    def prepare(self, event: Envelope, path: str = "$") -> PreparedEvent:
        """The event with a missing id, timestamp and source filled in, checked and encoded as it will be stored.

        Raises InvalidEvent, naming the field under `path`, when the event breaks a rule of the
        envelope (the ones `POST /api/publish` applies: a msgspec Struct does not check them when
        constructed) or of the catalog, and its subclass EventTooLarge when it is larger than NATS
        takes in one message.
        """
        event = self.catalog.checked(validated(event.completed(self.source), path), path)
        return PreparedEvent(event, encoded_within(event, self.max_body_bytes(event), path))

    async def send(self, prepared: PreparedEvent) -> PublishResult:
        """Store a prepared event and return its position.

        Raises PublishUnconfirmed (carrying the id) when JetStream does not confirm it in time:
        the event may still be stored once NATS is back, so retry with that id.
        Raises PublishRefused (an InvalidEvent) when NATS refuses it outright: a retry cannot
        succeed, so none should be made.
        """
        event = prepared.envelope
        definition = self.streams.for_type(event.type)
        assert event.id is not None
        try:
            acknowledgement = await self.jetstream.publish(
                subject_for(event, definition),
                prepared.body,
                headers=_headers(event, definition),
            )
        except Exception as error:
            reason = str(error) or type(error).__name__
            if _cannot_succeed(error):
                raise PublishRefused(event.id, reason) from error
            raise PublishUnconfirmed(event.id, reason) from error
        return PublishResult(event.id, definition.cursor_id, acknowledgement.seq, bool(acknowledgement.duplicate))

    async def publish(self, event: Envelope) -> PublishResult:
        """Store one event and return its position: `send(prepare(event))` (nothing is sent if `prepare` refuses it)."""
        return await self.send(self.prepare(event))

    async def close(self) -> None:
        """Flush and close the NATS connection when this publisher opened it."""
        if self._owns_client:
            await self.client.drain()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _headers(event: Envelope, definition: StreamDefinition) -> dict[str, str]:
    """The headers sent with an event: its id (JetStream de-duplicates by it) and the stream it must land in."""
    assert event.id is not None
    return {MESSAGE_ID_HEADER: event.id, Header.EXPECTED_STREAM: definition.name}


def _header_bytes(headers: dict[str, str]) -> int:
    """The size of the header block nats-py sends: `NATS/1.0`, a `Name: value` line each, a blank line."""
    return len(b"NATS/1.0\r\n\r\n") + sum(len(f"{name}: {value}\r\n".encode()) for name, value in headers.items())


def _cannot_succeed(error: Exception) -> bool:
    """Whether NATS refused the publish itself, so a retry fails the same way (a timeout or a 503 may pass later).

    The client refuses a subject or header it cannot send and a body above the server's
    max_payload before sending anything; JetStream answers 400 to a request it will never store.
    """
    if isinstance(error, BadSubjectError | BadHeaderError | MaxPayloadError):
        return True
    return isinstance(error, APIError) and error.code == 400
