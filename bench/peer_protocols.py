"""Load clients for the peers that do not speak the gateway's protocol: NATS over WebSocket, and Socket.IO.

Both are WebSocket clients (`protocols.WebSocketClient`): the frames are walked the same way and
each event's `sentAt` gives its latency. Only what rides inside the frames differs.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from bench.protocols import WebSocketClient, sent_at_in

BINARY = 2
TEXT = 1


class NatsWebSocketClient(WebSocketClient):
    """The NATS text protocol over WebSocket: CONNECT, SUB per channel, PING; events come as MSG.

    nats-server sends binary frames whose payloads together form the protocol stream (a MSG may
    span frames), so payloads are joined and parsed as a stream. The client is subscribed once
    the PONG to its first PING arrives (the server handles a connection's commands in order).
    """

    def __init__(self, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        query = parse_qs(urlsplit(self.request.split(b" ", 2)[1].decode()).query)
        self.subjects = [subject for subject in query.get("channels", [""])[0].split(",") if subject]
        self.stream = b""
        self.found = 0  # events found in the current read
        self.now_ns = 0

    def body_received(self, data: bytes, now_ns: int) -> None:
        self.now_ns = now_ns
        self.found = 0
        super().body_received(data, now_ns)
        if self.found:
            self.events_counted(self.found, now_ns)

    def control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode not in (BINARY, TEXT):
            super().control_frame(opcode, payload)
            return
        stream = self.stream + payload if self.stream else payload
        offset = 0
        size = len(stream)
        while offset < size:
            line_end = stream.find(b"\r\n", offset)
            if line_end < 0:
                break
            if stream.startswith(b"MSG ", offset):
                length = int(stream[stream.rfind(b" ", offset, line_end) + 1:line_end])
                end = line_end + 2 + length
                if end + 2 > size:
                    break  # the rest of this message is in a later frame
                sent_at = sent_at_in(stream, line_end + 2, end)  # as cheap as the other servers' clients
                if sent_at is not None:
                    self._record(sent_at, self.now_ns)
                    self.found += 1
                    self.stats.event_frames += 1
                offset = end + 2
                continue
            command = stream[offset:line_end]
            offset = line_end + 2
            if command.startswith(b"INFO "):
                self.send(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n', opcode=BINARY)
                for number, subject in enumerate(self.subjects, 1):
                    self.send(b"SUB %s %d\r\n" % (subject.encode(), number), opcode=BINARY)
                self.send(b"PING\r\n", opcode=BINARY)
            elif command == b"PING":
                self.send(b"PONG\r\n", opcode=BINARY)
            elif command == b"PONG":
                if not self.ready.done():
                    self.ready.set_result(None)
            elif command.startswith(b"-ERR"):
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(command.decode(errors="replace")))
                    self.ready.exception()
        self.stream = stream[offset:] if offset < size else b""


class SocketIoClient(WebSocketClient):
    """Engine.IO 4 / Socket.IO 5 over WebSocket: open, connect to `/`, answer pings; events are `42[...]`.

    `ack` and events arrive as `42["ack",...]` and `42["event",{...}]` text frames, which the
    WebSocket client already handles (an `ack` makes it ready, `sentAt` counts an event).
    """

    def control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == TEXT:
            if payload == b"2":  # Engine.IO ping
                self.send(b"3")
                return
            if payload.startswith(b"0{"):  # Engine.IO open: join the default namespace
                self.send(b"40")
                return
        super().control_frame(opcode, payload)
