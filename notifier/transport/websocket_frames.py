"""A client's WebSocket frames (RFC 6455 section 5) read into messages, with the framing rules a server enforces.

The gateway serves its WebSockets below aiohttp's request handler (`websocket_stream.py`), so it
reads the client's frames itself. Clients send little (subscribe, auth, pong), so this reader is
written to be plain and to hold nothing while idle, not for throughput: its state is a few slots,
and bytes are kept only while a frame is incomplete (at most one message's worth).

Every broken rule raises `FrameError` with the close code and a reason naming the rule: 1002 for
the framing, 1007 for text that is not UTF-8, 1009 for a message over the size limit (checked on
the declared length, before any of it is buffered).
"""

from __future__ import annotations

from aiohttp import WSMessage, WSMsgType

from notifier.model.close_codes import CloseCode

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPCODES = (CONTINUATION, TEXT, BINARY)
_CONTROL_OPCODES = (CLOSE, PING, PONG)
MAX_CONTROL_PAYLOAD = 125

# Close codes a peer may send (RFC 6455 7.4): 1004-1006 and 1015 are reserved, never on the wire.
_SENDABLE_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
NO_STATUS = 1005  # a close frame without a code (RFC 6455 7.1.5)


class FrameError(Exception):
    """The client broke a WebSocket rule: close with `code` and `reason`."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _protocol_error(rule: str) -> FrameError:
    return FrameError(CloseCode.PROTOCOL_ERROR, f"websocket protocol error: {rule}")


def unmask(payload: bytes, mask: bytes) -> bytes:
    """`payload` XOR the 4-byte `mask` repeated: one big-integer XOR, not a Python loop per byte."""
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


class FrameReader:
    """Turns a client's bytes, in pieces of any size, into whole messages; see the module docstring."""

    __slots__ = ("max_message_bytes", "_buffer", "_fragments", "_fragment_opcode", "_fragment_size", "closed")

    def __init__(self, max_message_bytes: int):
        self.max_message_bytes = max_message_bytes
        self._buffer = b""  # the start of an incomplete frame
        # The payload so far of a fragmented message: one bytearray, not a list of frames, so a message
        # of a million empty or 1-byte fragments holds its bytes, not 8-40 bytes of objects per frame.
        self._fragments: bytearray | None = None
        self._fragment_opcode = TEXT
        self._fragment_size = 0
        self.closed = False  # a close frame was read: nothing after it is a message

    def feed(self, data: bytes) -> list[WSMessage]:
        """The messages completed by `data`: text (str), binary, ping, pong, close (code, reason); FrameError if broken."""
        if self.closed:
            return []
        buffer = self._buffer + data if self._buffer else data
        messages: list[WSMessage] = []
        position = 0
        end = len(buffer)
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            final, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
            if first & 0x70:
                raise _protocol_error("reserved bits set without an extension")
            if not second & 0x80:
                raise _protocol_error("client frames must be masked")
            if opcode in _CONTROL_OPCODES:
                if not final:
                    raise _protocol_error("fragmented control frame")
                if length > MAX_CONTROL_PAYLOAD:
                    raise _protocol_error("control frame over 125 bytes")
            elif opcode not in _DATA_OPCODES:
                raise _protocol_error(f"unknown opcode {opcode}")
            header = position + 2
            if length == 126:
                if end - position < 4:
                    break
                length = int.from_bytes(buffer[header:header + 2], "big")
                header += 2
            elif length == 127:
                if end - position < 10:
                    break
                length = int.from_bytes(buffer[header:header + 8], "big")
                header += 8
                if length >> 63:
                    raise _protocol_error("frame length over 2**63")
            if opcode in _DATA_OPCODES:
                self._check_sequence(opcode)
                so_far = self._fragment_size if opcode == CONTINUATION else 0
                if so_far + length > self.max_message_bytes:
                    raise FrameError(CloseCode.MESSAGE_TOO_BIG, "message too big")
            frame_end = header + 4 + length
            if frame_end > end:
                break
            payload = unmask(buffer[header + 4:frame_end], buffer[header:header + 4])
            position = frame_end
            message = self._message(opcode, bool(final), payload)
            if message is not None:
                messages.append(message)
                if message.type is WSMsgType.CLOSE:
                    self.closed = True
                    break
        self._buffer = buffer[position:] if position < end and not self.closed else b""
        return messages

    def _check_sequence(self, opcode: int) -> None:
        if opcode == CONTINUATION and self._fragments is None:
            raise _protocol_error("continuation frame without a message to continue")
        if opcode != CONTINUATION and self._fragments is not None:
            raise _protocol_error("new message before the fragmented one ended")

    def _message(self, opcode: int, final: bool, payload: bytes) -> WSMessage | None:
        if opcode == PING:
            return WSMessage(WSMsgType.PING, payload, None)
        if opcode == PONG:
            return WSMessage(WSMsgType.PONG, payload, None)
        if opcode == CLOSE:
            return _close_message(payload)
        if not final:
            if self._fragments is None:
                self._fragments, self._fragment_opcode, self._fragment_size = bytearray(), opcode, 0
            self._fragments += payload
            self._fragment_size += len(payload)
            return None
        if opcode == CONTINUATION:
            assert self._fragments is not None
            self._fragments += payload
            payload = bytes(self._fragments)
            opcode = self._fragment_opcode
            self._fragments, self._fragment_size = None, 0
        if opcode == BINARY:
            return WSMessage(WSMsgType.BINARY, payload, None)
        try:
            return WSMessage(WSMsgType.TEXT, payload.decode("utf-8"), None)
        except UnicodeDecodeError:
            raise FrameError(CloseCode.UNSUPPORTED_DATA, "text frame is not UTF-8") from None


def _close_message(payload: bytes) -> WSMessage:
    """A close frame's code and reason (RFC 6455 5.5.1): none, or two bytes of code then UTF-8."""
    if not payload:
        return WSMessage(WSMsgType.CLOSE, NO_STATUS, "")
    if len(payload) == 1:
        raise _protocol_error("close frame of one byte")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise _protocol_error(f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CloseCode.UNSUPPORTED_DATA, "close reason is not UTF-8") from None
    return WSMessage(WSMsgType.CLOSE, code, reason)
