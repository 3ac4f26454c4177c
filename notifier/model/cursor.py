"""The resume cursor: one opaque string holding the client's sequence in every JetStream stream.

Written as `<stream id><sequence>-<epoch>` parts joined by dots, e.g. `a1042-k3f9.m88213-0x2c`.
It comes from JetStream stream sequences only, so it means the same on every replica and after
restarts. A sequence alone cannot tell a stream from the one that replaced it (deleted and
recreated, or a server that came back with a new store): sequence 3 of the new stream is not
sequence 3 of the old. The epoch names the stream's incarnation (from its creation time, which
every replica reads alike), so a resume into another incarnation is answered `complete: false`
from the new stream's start instead of skipping its first events. A part without an epoch (a
cursor from before epochs) is taken to point into the current incarnation.

A part may say how far a replay already went past its sequence: `m88213~88240` (see
`HistoryStamps`). While a replay reads a stream that may have a hole after the cursor, the
sequence stays at the cursor's, so a resume judges the hole from there again; `~88240` says the
client already received the stream's events up to 88240, so that resume does not send them twice.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime

from notifier.model.close_codes import ErrorCode
from notifier.model.errors import NotifierError
from notifier.model.limits import MAX_CURSOR_LENGTH, MAX_SEQUENCE

# ASCII classes only, matched in full: `\d` would take Unicode digits and `$` a trailing newline.
_PART = re.compile(r"([a-z]{1,8})([0-9]{1,20})(?:~([0-9]{1,20}))?(?:-([0-9a-z]{1,8}))?")
EPOCH_LENGTH = 4
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# Shared by every cursor that knows no epochs; never changed in place.
NO_EPOCHS: Mapping[str, str] = {}
NO_THROUGH: Mapping[str, int] = {}


class InvalidCursor(NotifierError, ValueError):
    """A cursor string that this gateway never issued."""

    code = ErrorCode.INVALID_CURSOR


def epoch_of(created: datetime | str | None) -> str | None:
    """The epoch of a stream created at this time: 4 base-36 characters of its CRC-32 (None: not known).

    Two incarnations of a stream collide with a chance of 1 in 1.7 million; in exchange every
    part of every cursor grows by 5 bytes only.
    """
    if created is None:
        return None
    text = created.isoformat() if isinstance(created, datetime) else created
    value = zlib.crc32(text.encode()) % 36**EPOCH_LENGTH
    digits = []
    for _ in range(EPOCH_LENGTH):
        value, digit = divmod(value, 36)
        digits.append(_DIGITS[digit])
    return "".join(reversed(digits))


class Cursor(dict[str, int]):
    """Stream id -> last sequence the client has seen there; a stream it lacks means sequence 0.

    `epochs` (stream id -> epoch) travel with the positions: a copy made with `Cursor(other)`
    keeps them, so cursors stamped from the hub's positions carry the streams' epochs.

    `through` (stream id -> sequence) is set by `decode_cursor` alone and never copied: how far
    the client already received a stream past its position (`m88213~88240`), for the replay of
    that one resume.
    """

    __slots__ = ("epochs", "through")

    def __init__(self, positions: Mapping[str, int] | Iterable[tuple[str, int]] = (),
                 epochs: Mapping[str, str] | None = None, through: Mapping[str, int] = NO_THROUGH):
        super().__init__(positions)
        self.epochs: Mapping[str, str] = epochs if epochs is not None else getattr(positions, "epochs", NO_EPOCHS)
        self.through = through

    def part(self, stream: str, sequence: int, through: int = 0) -> str:
        """One stream's part of the wire form, with how far a replay went past it and its epoch when known."""
        epoch = self.epochs.get(stream)
        text = f"{stream}{sequence}~{through}" if through > sequence else f"{stream}{sequence}"
        return text if epoch is None else f"{text}-{epoch}"

    def encode(self) -> str:
        """The wire form, streams in sorted order so equal cursors are equal strings."""
        return ".".join(self.part(stream, self[stream]) for stream in sorted(self))

    def advanced(self, stream: str, sequence: int) -> Cursor:
        """A copy positioned at `sequence` in `stream`."""
        moved = Cursor(self)
        moved[stream] = sequence
        return moved

    def raised_to(self, floor: Mapping[str, int]) -> Cursor:
        """A copy at least at `floor` in every stream: the one home of "a cursor never moves backwards".

        `floor` is where history took a client beyond the hub's live position (a lagging feed, a
        replica behind); every cursor stamped for that client afterwards is raised to it.
        """
        raised = Cursor(self)
        for stream, sequence in floor.items():
            if sequence > raised.position(stream):
                raised[stream] = sequence
        return raised

    def position(self, stream: str) -> int:
        """The last sequence seen in `stream` (0 when never seen)."""
        return self.get(stream, 0)

    def epoch(self, stream: str) -> str | None:
        """The incarnation of `stream` this cursor points into, None when it does not say."""
        return self.epochs.get(stream)


def decode_cursor(text: str) -> Cursor:
    """Parse a cursor, raising InvalidCursor with the rule it broke."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor must be a non-empty string of at most 512 characters")
    positions: dict[str, int] = {}
    epochs: dict[str, str] = {}
    through: dict[str, int] = {}
    for part in text.split("."):
        match = _PART.fullmatch(part)
        if match is None:
            raise InvalidCursor(f"cursor {text!r}: part {part!r} is not <stream id><sequence>[~<sequence>][-<epoch>]")
        stream, digits, through_digits, epoch = match.groups()
        sequence = int(digits)
        if sequence > MAX_SEQUENCE:
            raise InvalidCursor(f"cursor {text!r}: sequence {digits} is past 2^64-1")
        if stream in positions:
            raise InvalidCursor(f"cursor {text!r}: stream id {stream!r} appears twice")
        positions[stream] = sequence
        if through_digits is not None:
            received = int(through_digits)
            if not sequence < received <= MAX_SEQUENCE:
                raise InvalidCursor(f"cursor {text!r}: in part {part!r} the sequence after '~' must be past "
                                    f"{sequence} and at most 2^64-1")
            through[stream] = received
        if epoch is not None:
            epochs[stream] = epoch
    return Cursor(positions, epochs or NO_EPOCHS, through or NO_THROUGH)
