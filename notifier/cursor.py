"""The resume cursor: one opaque string holding the client's sequence in every JetStream stream.

Written as `<stream id><sequence>` parts joined by dots, e.g. `a1042.m88213`. It comes from
JetStream stream sequences only, so it means the same on every replica and after restarts.
"""

from __future__ import annotations

import re
from typing import Mapping

_PART = re.compile(r"^([a-z]+)(\d{1,20})$")
MAX_CURSOR_LENGTH = 512


class InvalidCursor(ValueError):
    """A cursor string that this gateway never issued."""


class Cursor(dict[str, int]):
    """Stream id -> last sequence the client has seen there; a stream it lacks means sequence 0."""

    def encode(self) -> str:
        """The wire form, streams in sorted order so equal cursors are equal strings."""
        return ".".join(f"{stream}{self[stream]}" for stream in sorted(self))

    def advanced(self, stream: str, sequence: int) -> "Cursor":
        """A copy positioned at `sequence` in `stream`."""
        moved = Cursor(self)
        moved[stream] = sequence
        return moved

    def position(self, stream: str) -> int:
        """The last sequence seen in `stream` (0 when never seen)."""
        return self.get(stream, 0)


def decode_cursor(text: str, known_streams: Mapping[str, object] | None = None) -> Cursor:
    """Parse a cursor, raising InvalidCursor with the rule it broke."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor must be a non-empty string of at most 512 characters")
    cursor = Cursor()
    for part in text.split("."):
        match = _PART.match(part)
        if match is None:
            raise InvalidCursor(f"cursor {text!r}: part {part!r} is not <stream id><sequence>")
        stream, sequence = match.group(1), int(match.group(2))
        if known_streams is not None and stream not in known_streams:
            raise InvalidCursor(f"cursor {text!r}: unknown stream id {stream!r}")
        cursor[stream] = sequence
    return cursor
