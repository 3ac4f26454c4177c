"""The bench's load clients for the peers: NATS over WebSocket and Socket.IO, fed the bytes a server sends."""

from __future__ import annotations

from bench.peer_protocols import NatsWebSocketClient, SocketIoClient
from bench.protocols import Stats

HEAD = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


class RecordingTransport:
    """Keeps what the client writes (masked frames), unmasked, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        if data.startswith(b"GET "):
            return  # the upgrade request
        length = data[1] & 0x7F
        mask, payload = data[2:6], data[6:6 + length]
        self.sent.append(bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload)))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def frame(payload: bytes, opcode: int) -> bytes:
    """An unmasked server frame (payloads here are under 126 bytes)."""
    return bytes((0x80 | opcode, len(payload))) + payload


def opened(kind, path: str):
    client = kind(Stats(), "127.0.0.1", 1, path)
    transport = RecordingTransport()
    client.connection_made(transport)
    client.data_received(HEAD)
    return client, transport


async def test_nats_client_subscribes_after_info_and_is_ready_on_pong():
    """On INFO the NATS client sends CONNECT, a SUB per channel and PING; the PONG makes it ready."""
    client, transport = opened(NatsWebSocketClient, "/?channels=market.ticker:BTC/USDT,alert.x")
    client.data_received(frame(b'INFO {"server_id":"x"}\r\n', 2))
    assert transport.sent[1:] == [b"SUB market.ticker:BTC/USDT 1\r\n", b"SUB alert.x 2\r\n", b"PING\r\n"]
    assert transport.sent[0].startswith(b"CONNECT ")
    assert not client.ready.done()
    client.data_received(frame(b"PONG\r\n", 2))
    assert client.ready.done()


async def test_nats_client_counts_a_message_split_across_frames_once():
    """A MSG whose payload spans two WebSocket frames is counted once, when its last byte arrives."""
    client, _ = opened(NatsWebSocketClient, "/?channels=a")
    body = b'{"sentAt":1}'
    message = b"MSG a 1 %d\r\n" % len(body) + body + b"\r\n"
    client.data_received(frame(message[:15], 2))
    assert client.stats.received == 0
    client.data_received(frame(message[15:] + message, 2))
    assert client.stats.received == 2


async def test_nats_client_answers_ping():
    """A PING from nats-server is answered with PONG, so the server keeps the connection."""
    client, transport = opened(NatsWebSocketClient, "/?channels=a")
    client.data_received(frame(b"PING\r\n", 2))
    assert transport.sent[-1] == b"PONG\r\n"


async def test_socketio_client_joins_on_open_answers_ping_and_is_ready_on_ack():
    """Engine.IO open is answered with `40`, a ping `2` with `3`, and the `ack` event makes the client ready."""
    client, transport = opened(SocketIoClient, "/socket.io/?EIO=4&transport=websocket&channels=a")
    client.data_received(frame(b'0{"sid":"s","pingInterval":25000}', 1))
    client.data_received(frame(b"2", 1))
    assert transport.sent == [b"40", b"3"]
    client.data_received(frame(b'42["ack",{"action":"ack"}]', 1))
    assert client.ready.done()


async def test_socketio_client_counts_events():
    """A `42["event",{...sentAt...}]` frame counts as one event."""
    client, _ = opened(SocketIoClient, "/socket.io/?EIO=4&transport=websocket&channels=a")
    client.data_received(frame(b'42["event",{"data":{"sentAt":5}}]', 1))
    assert client.stats.received == 1


async def test_nats_client_counts_a_message_stamped_before_the_previous_read_as_out_of_order():
    """A MSG stamped no later than one from an earlier read is counted in `out_of_order`."""
    client, _ = opened(NatsWebSocketClient, "/?channels=a")
    for stamp in (1_764_000_000_000_000_002, 1_764_000_000_000_000_001):
        body = b'{"sentAt":%d}' % stamp
        client.data_received(frame(b"MSG a 1 %d\r\n" % len(body) + body + b"\r\n", 2))
    assert client.stats.out_of_order == 1
