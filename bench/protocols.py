"""Lean client ends of the real WebSocket (RFC 6455) and SSE (chunked HTTP/1.1) protocols.

Written on bare asyncio protocols, not aiohttp's client, because the load generator must
cost far less per message than the server it measures: one `time.time_ns()` per read, one
regex search per event, counters updated once per read, no task or future per message.

A WebSocket text frame holds one JSON object, or (the gateway's `?batch=1`) a JSON array of
them; an array is split into its messages (msgspec, without decoding them) and each is handled
as if it had come in a frame of its own, so every event still gets its own latency.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from array import array
from time import time_ns

import msgspec

# Optional spaces: the naive baseline writes with `json.dumps` defaults (`"key": value`).
SENT_AT = re.compile(rb'"sentAt": ?(\d+)')
SENT_AT_KEY = b'"sentAt":'
KEY_LENGTH = len(SENT_AT_KEY)
WEBSOCKET_CURSOR = re.compile(rb', ?"id": ?"([^"]+)"')
SSE_CURSOR = re.compile(rb"(?:^|\n)id: ([^\n\r]+)")
COMPLETE = re.compile(rb'"complete": ?true')
HEADER_END = b"\r\n\r\n"
PONG = b'{"action":"pong"}'
ARRAY_START = 0x5B  # `[`: a batched frame
MESSAGES = msgspec.json.Decoder(list[msgspec.Raw])  # an array's messages as raw bytes, none of them decoded


NO_CUTOFF = 2**63 - 1


def sent_at_in(data: bytes, start: int, end: int) -> int | None:
    """The `sentAt` stamp (ns) in data[start:end], or None when there is none (a control message).

    Found with `bytes.rfind` and read as the 19 digits a wall-clock ns stamp has (until 2286) rather
    than with `SENT_AT.search`: 0.43 against 0.75 µs per event on the bench machine, where the load
    generator took about 2.5 µs of CPU per delivery at 400 ev/s, more than the servers it measures
    (1.4-1.9). Anything else (another width, a stamp that is not digits) goes to the regex.
    """
    at = data.rfind(SENT_AT_KEY, start, end)
    if at < 0:
        return None
    at += KEY_LENGTH
    if at < end and data[at] == 0x20:  # `json.dumps` writes `"sentAt": 1`
        at += 1
    stop = at + 19
    if stop < end and not 0x30 <= data[stop] <= 0x39:
        try:
            return int(data[at:stop])
        except ValueError:
            pass
    found = SENT_AT.search(data, start, end)
    return int(found.group(1)) if found is not None else None


class Stats:
    """What every client of one worker adds to: event latencies (µs) and receive times.

    A step counts what arrives up to its cutoff (wall clock, ns), a fixed time after it started,
    whenever the harness asks for the figures; what arrives later goes to `after_cutoff`.
    """

    def __init__(self, counting: bool = True) -> None:
        self.reset()
        self.target = -1
        self.reached = asyncio.Event()
        self.cutoff_ns = NO_CUTOFF
        self.after_cutoff = Stats(counting=False) if counting else self

    def reset(self) -> None:
        self.latencies = array("q")
        self.received = 0
        self.first_ns = 0
        self.last_ns = 0
        # WebSocket framing (SSE leaves these at 0): frames that carried at least one event, and of
        # those the arrays (`?batch=1`), the events in them and the longest; then what looked wrong.
        self.event_frames = 0
        self.arrays = 0
        self.array_events = 0
        self.longest_array = 0
        self.controls_in_arrays = 0  # ack/ping/... inside an array: allowed, worth knowing
        self.bad_frames = 0  # an array frame that does not decode as a JSON array, or an empty one
        self.out_of_order = 0  # an event stamped no later than the one before it on its connection: reordered, repeated

    def figures(self) -> dict:
        """The framing counters, for the harness."""
        return {"event_frames": self.event_frames, "arrays": self.arrays, "array_events": self.array_events,
                "longest_array": self.longest_array, "controls_in_arrays": self.controls_in_arrays,
                "bad_frames": self.bad_frames, "out_of_order": self.out_of_order}


class StreamClient(asyncio.Protocol):
    """Shared by both transports: the HTTP request, the response head, and what a client remembers."""

    def __init__(self, stats: Stats, host: str, port: int, path: str, cursor: str | None = None):
        self.stats = stats
        self.request = self.build_request(f"{host}:{port}", path, cursor)
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.open = False
        self.events = 0
        self._cursor = cursor
        self._cursor_source: bytes | None = None  # the newest event's bytes; parsed only when asked
        self.close_code: int | None = None
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()  # subscribed (ack / first SSE bytes)
        self.recovered = loop.create_future()  # resolved with `complete` after a replay
        self.next_event: asyncio.Future | None = None  # armed by the harness to wait for a fresh event
        self.closed = loop.create_future()

    @property
    def cursor(self) -> str | None:
        """The resume cursor of the newest event received."""
        if self._cursor_source is not None:
            found = self.cursor_in(self._cursor_source)
            if found is not None:
                self._cursor = found
            self._cursor_source = None
        return self._cursor

    def cursor_in(self, source: bytes) -> str | None:
        raise NotImplementedError

    def arm(self) -> asyncio.Future:
        """A future resolved by the next event this client receives."""
        self.next_event = asyncio.get_running_loop().create_future()
        return self.next_event

    def build_request(self, authority: str, path: str, cursor: str | None) -> bytes:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exception: Exception | None) -> None:
        for future in (self.ready, self.recovered, self.next_event):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"closed before ready (code {self.close_code})"))
                future.exception()  # mark retrieved: not every future is awaited
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.head += data
            end = self.head.find(HEADER_END)
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4:]
            self.head = b""
            if not self.accept_head(head):
                self.transport.close()
                return
            self.open = True
            if not data:
                return
        now_ns = time_ns()
        stats = self.stats
        if now_ns <= stats.cutoff_ns:
            self.body_received(data, now_ns)
            return
        # Past the step's cutoff: parsed as ever (frames span reads), counted apart.
        self.stats = stats.after_cutoff
        try:
            self.body_received(data, now_ns)
        finally:
            self.stats = stats

    def events_counted(self, events: int, now_ns: int) -> None:
        """`events` arrived in one read at `now_ns` (their latencies are already appended)."""
        self.events += events
        stats = self.stats
        before = stats.received
        stats.received = before + events
        if not before:
            stats.first_ns = now_ns
        stats.last_ns = now_ns
        if before < stats.target <= stats.received:
            stats.reached.set()
        if self.next_event is not None:
            if not self.next_event.done():
                self.next_event.set_result(None)
            self.next_event = None

    def accept_head(self, head: bytes) -> bool:
        raise NotImplementedError

    def body_received(self, data: bytes, now_ns: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class WebSocketClient(StreamClient):
    """A WebSocket client: masked frames out, unmasked frames in, pongs for pings."""

    def __init__(self, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        self.pending = b""
        self.last_sent_at = 0  # the newest event's stamp, to notice events that arrive out of order or twice
        self.tail = len(SENT_AT_KEY)  # where the stamp began in the last event frame, counted from its end

    def build_request(self, authority: str, path: str, cursor: str | None) -> bytes:
        if cursor is not None:
            path += ("&" if "?" in path else "?") + "last_event_id=" + cursor
        key = base64.b64encode(os.urandom(16)).decode()
        return (f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()

    def accept_head(self, head: bytes) -> bool:
        return head.startswith(b"HTTP/1.1 101")

    def cursor_in(self, source: bytes) -> str | None:
        # The message's own `id` comes before `data`, whose envelope has an `id` of its own.
        found = WEBSOCKET_CURSOR.search(source)
        return found.group(1).decode() if found else None

    def body_received(self, data: bytes, now_ns: int) -> None:
        """Walk the complete frames in place (no per-frame copies of events); keep a partial one."""
        if self.pending:
            data = self.pending + data
        size = len(data)
        offset = 0
        events = 0
        frames = 0
        newest = None  # the newest event's bytes if it came in an array; else it is data[newest_start:newest_end]
        newest_start = newest_end = 0
        stats = self.stats
        latencies = stats.latencies
        find = data.rfind
        starts = data.startswith
        tail = self.tail
        while size - offset >= 2:
            first, second = data[offset], data[offset + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - offset < 4:
                    break
                length = (data[offset + 2] << 8) | data[offset + 3]  # not `int.from_bytes`: 0.12 against 0.36 µs
                header = 4
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(data[offset + 2:offset + 10], "big")
                header = 10
            start = offset + header
            end = start + length
            if end > size:
                break
            offset = end
            if first & 0x0F != 1:
                self.control_frame(first & 0x0F, data[start:end])
                continue
            if length and data[start] == ARRAY_START:
                found_events, in_array = self.array_received(data, start, end, now_ns)
                if found_events:
                    events += found_events
                    frames += 1
                    newest = in_array
                continue
            # `sent_at_in`, written out for its common case (a call less per event). A server puts the
            # stamp at the same distance from the end of each of its event frames: looked for there first
            # (`startswith`, 0.07 µs), else searched for (`rfind`, 0.29 µs) and that distance learnt.
            at = end - tail
            if at < start or not starts(SENT_AT_KEY, at, end):
                at = find(SENT_AT_KEY, start, end)
                if at < 0:
                    self.control_frame(1, data[start:end])
                    continue
                tail = self.tail = end - at
            at += KEY_LENGTH
            if at < end and data[at] == 0x20:
                at += 1
            stop = at + 19
            sent_at = None
            if stop < end and not 0x30 <= data[stop] <= 0x39:
                try:
                    sent_at = int(data[at:stop])
                except ValueError:
                    pass
            if sent_at is None:
                sent_at = sent_at_in(data, start, end)  # not 19 digits: the regex reads it, if anything does
                if sent_at is None:
                    self.control_frame(1, data[start:end])
                    continue
            # `_record`, written out: this runs for every event of every client (the load generator's
            # own CPU is what leaves a 2-core machine to the server measured).
            if sent_at <= self.last_sent_at:
                stats.out_of_order += 1
            self.last_sent_at = sent_at
            latencies.append((now_ns - sent_at) // 1000)
            events += 1
            frames += 1
            newest = None
            newest_start, newest_end = start, end
        self.pending = data[offset:] if offset < size else b""
        if events:
            stats.event_frames += frames
            self._cursor_source = newest if newest is not None else data[newest_start:newest_end]
            self.events_counted(events, now_ns)

    def _record(self, sent_at: int, now_ns: int) -> None:
        """One event's latency (µs), and whether it came no later than the one before it."""
        if sent_at <= self.last_sent_at:
            self.stats.out_of_order += 1
        self.last_sent_at = sent_at
        self.stats.latencies.append((now_ns - sent_at) // 1000)

    def array_received(self, data: bytes, start: int, end: int, now_ns: int) -> tuple[int, bytes | None]:
        """One batched frame: each message in it as if it were a frame of its own. Returns (events, newest event)."""
        stats = self.stats
        try:
            messages = MESSAGES.decode(memoryview(data)[start:end])
        except msgspec.DecodeError:
            stats.bad_frames += 1
            return 0, None
        if not messages:
            stats.bad_frames += 1  # an empty batch: the gateway should not send one
        search = SENT_AT.search
        events = 0
        newest = None
        for message in messages:
            found = search(message)
            if found is None:
                stats.controls_in_arrays += 1
                self.control_frame(1, bytes(message))
                continue
            self._record(int(found.group(1)), now_ns)
            events += 1
            newest = message
        if events:
            stats.arrays += 1
            stats.array_events += events
            stats.longest_array = max(stats.longest_array, events)
        return events, bytes(newest) if newest is not None else None

    def control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 1:  # control messages carry no sentAt
            if b'"ack"' in payload:
                if not self.ready.done():
                    self.ready.set_result(None)
            elif b'"recovered"' in payload:
                if not self.recovered.done():
                    self.recovered.set_result(COMPLETE.search(payload) is not None)
            elif b'"ping"' in payload:
                self.send(PONG)
            elif b'"error"' in payload:
                for future in (self.ready, self.recovered):  # fail fast instead of waiting out a timeout
                    if not future.done():
                        future.set_exception(ConnectionError(payload.decode(errors="replace")))
                        future.exception()
        elif opcode == 8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self.close()
        elif opcode == 9:
            self.send(payload, opcode=10)

    def send(self, payload: bytes, opcode: int = 1) -> None:
        """Send one masked frame (clients must mask, RFC 6455 section 5.3); payloads here are small."""
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)


class SseClient(StreamClient):
    """An EventSource-like client: de-chunks the body, splits events on blank lines."""

    def __init__(self, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        self.chunked = False
        self.raw = b""  # chunked bytes not yet decoded
        self.text = b""  # decoded bytes not yet split into events
        self.chunk_left = 0  # data bytes of the current chunk still to come
        self.skip = 0  # framing bytes (the CRLF after a chunk) still to skip

    def build_request(self, authority: str, path: str, cursor: str | None) -> bytes:
        resume = f"Last-Event-ID: {cursor}\r\n" if cursor is not None else ""
        return (f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n"
                f"Cache-Control: no-cache\r\n{resume}\r\n").encode()

    def cursor_in(self, source: bytes) -> str | None:
        found = SSE_CURSOR.findall(source)  # several events may have arrived together: the last wins
        return found[-1].decode() if found else None

    def accept_head(self, head: bytes) -> bool:
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        return head.startswith(b"HTTP/1.1 200")

    def body_received(self, data: bytes, now_ns: int) -> None:
        if not self.ready.done():
            self.ready.set_result(None)  # the stream is open; the harness's warm-up proves the subscription
        self.text += self.dechunk(data) if self.chunked else data
        end = self.text.rfind(b"\n\n")
        if end < 0:
            return
        complete, self.text = self.text[:end + 2], self.text[end + 2:]
        latencies = self.stats.latencies
        events = 0
        for found in SENT_AT.finditer(complete):
            latencies.append((now_ns - int(found.group(1))) // 1000)
            events += 1
        if b"event: recovered" in complete and not self.recovered.done():
            self.recovered.set_result(COMPLETE.search(complete) is not None)
        if events:
            self._cursor_source = complete
            self.events_counted(events, now_ns)

    def dechunk(self, data: bytes) -> bytes:
        """Strip HTTP/1.1 chunk framing (size line, data, CRLF), keeping state across reads."""
        raw = self.raw + data
        decoded = []
        offset = 0
        size = len(raw)
        while offset < size:
            if self.skip:  # the CRLF after a chunk's data
                take = min(self.skip, size - offset)
                self.skip -= take
                offset += take
                continue
            if self.chunk_left == 0:
                line_end = raw.find(b"\r\n", offset)
                if line_end < 0:
                    break
                self.chunk_left = int(raw[offset:line_end].split(b";")[0] or b"0", 16)
                offset = line_end + 2
                if self.chunk_left == 0:
                    break  # the last chunk: the stream ended
                continue
            take = min(self.chunk_left, size - offset)
            decoded.append(raw[offset:offset + take])
            self.chunk_left -= take
            offset += take
            if self.chunk_left == 0:
                self.skip = 2
        self.raw = raw[offset:]
        return b"".join(decoded)
