"""SSE framings of the trading streams: events named for the feature (a backtest's phase, an alert's level).

These frames are built per client (a handful of clients watch one backtest): nothing is shared
through `OutgoingEvent` or the replay cache, which key on the generic framings only.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import msgspec

from notifier.fanout.frames import OutgoingEvent, SseFraming, http_chunk
from notifier.model.events import Envelope, StoredEvent

_encoder = msgspec.json.Encoder()
# An SSE event name is one line; a name taken from a payload must also be one a listener can name.
_EVENT_NAME = re.compile(r"[a-z0-9_-]{1,32}")

# `backtest.<phase>` -> the event name the platform's backtest page listens for.
BACKTEST_NAMES = {"started": "started", "progress": "progress", "completed": "complete", "failed": "failed"}
BACKTEST_FINAL_NAMES = frozenset(("complete", "failed"))


class NamedSseFraming(SseFraming):
    """Each event named by `name_of` (unnamed when it gives None); `data` the payload alone or the envelope.

    With `final_names`, the stream ends once an event of one of them is written (`ends_after`).
    """

    joins = False  # its frames depend on the stream's purpose and options, not on `kind` alone

    def __init__(self, purpose: str, name_of: Callable[[Envelope], str | None], payload_only: bool,
                 final_names: frozenset[str] = frozenset(), chunked: bool = True):
        super().__init__(named=True, chunked=chunked)
        self.kind = f"sse-{purpose}" + ("-chunked" if chunked else "")
        self.name_of = name_of
        self.payload_only = payload_only
        self.final_names = final_names
        self._final: bytes | None = None  # the frame of the final event, once built
        if final_names:
            self.ends_after = self._holds_final

    def live(self, outgoing: OutgoingEvent) -> bytes:
        return self.build_replayed(outgoing.event, outgoing.cursor)

    def replayed(self, event: StoredEvent, cursor: str) -> bytes:
        # Never from the shared cache: the final frame is recognised by identity.
        return self.build_replayed(event, cursor)

    def build_replayed(self, event: StoredEvent, cursor: str) -> bytes:
        envelope = event.envelope
        name = self.name_of(envelope)
        data = _encoder.encode(envelope.payload) if self.payload_only else event.body
        block = b"".join((b"id: ", cursor.encode(), b"\n",
                          b"event: " + name.encode() + b"\n" if name is not None else b"",
                          b"data: ", data, b"\n\n"))
        frame = http_chunk(block) if self.chunked else block
        if name in self.final_names:
            self._final = frame
        return frame

    def _holds_final(self, frames: list[bytes]) -> bool:
        final = self._final
        return final is not None and any(frame is final for frame in frames)


def backtest_event_name(envelope: Envelope) -> str | None:
    """`progress`, `complete`, `failed` (and `started`) for `backtest.<phase>`; other phases by their own name."""
    phase = envelope.type.rpartition(".")[2]
    return BACKTEST_NAMES.get(phase, phase.lower() if _EVENT_NAME.fullmatch(phase.lower()) else None)


def alert_event_name(envelope: Envelope) -> str | None:
    """The alert's `payload.level` in lower case (`warning`, `critical`); unnamed when it has no usable level."""
    level = envelope.payload.get("level")
    if not isinstance(level, str):
        return None
    level = level.lower()
    return level if _EVENT_NAME.fullmatch(level) else None


def backtest_framing(chunked: bool) -> NamedSseFraming:
    """A backtest's stream: phases named, the payload alone as data, ended by `complete` or `failed`."""
    return NamedSseFraming("backtest", backtest_event_name, payload_only=True, final_names=BACKTEST_FINAL_NAMES,
                           chunked=chunked)


def alert_framing(chunked: bool) -> NamedSseFraming:
    """The alerts stream: each alert named by its level, the whole envelope as data."""
    return NamedSseFraming("alerts", alert_event_name, payload_only=False, chunked=chunked)
