"""The resume hand-over's pure rules: which live copies history already sent, and the cursor of each event.

Like centrifuge's internal/recovery: no I/O and no session here, so every rule is unit-tested
without NATS (tests/unit/test_history_stamps.py, tests/unit/test_handover_property.py). The session
(`session.py`) registers with the hub before reading history and buffers live events meanwhile;
`recovery.py` reads history and stamps each event with `HistoryStamps`; afterwards a
`ReplayFloor` drops the buffered live copies history covered. docs/architecture.md states the
invariants.
"""

from __future__ import annotations

from collections.abc import Mapping

from notifier.fanout.frames import OutgoingEvent
from notifier.model.channels import ChannelPattern
from notifier.model.cursor import Cursor


class ReplayFloor:
    """Sequences history already sent for some channels; live copies at or below them are dropped."""

    __slots__ = ("patterns", "sequences")

    def __init__(self, patterns: list[ChannelPattern], sequences: Cursor):
        self.patterns = patterns
        self.sequences = sequences

    def passed_by(self, positions: Cursor) -> bool:
        """Whether the hub is past this floor in every stream, so no live copy can come any more."""
        return all(positions.position(stream) >= sequence for stream, sequence in self.sequences.items())

    def covers(self, outgoing: OutgoingEvent) -> bool:
        """Whether this live event was already sent (or superseded) by history."""
        event = outgoing.event
        if event.sequence > self.sequences.position(event.stream):
            return False
        envelope = event.envelope
        return any(pattern.matches(envelope.type, envelope.key) for pattern in self.patterns)


class HistoryStamps:
    """The cursors of one catch-up's events: true for the channels caught up and for the live ones.

    Streams only the catch-up reads are at the position of the event just read; streams only live
    channels read stay where live delivery paused (`base`, the hub's position at registration); a
    stream both read takes the lower, so a resume may repeat live events there but never skips one.
    All are raised to where history took the client before (`replayed`): never backwards.

    During a replay only the position in the stream of the event just read moves: the base, the
    session's `replayed` raise and which streams are live stay fixed (live delivery is paused and
    replays run one at a time), so the other parts are encoded once.

    A stream with a hole (`holes`: history no longer reaches back to `since`, the stream was
    recreated, or it keeps only N messages per subject, so older ones may be gone) stays at its
    `since` part until `recovered` is sent, which carries the cursor with the holes released
    (`released`). A client that drops mid-replay holds no cursor past a hole it was never told
    of: resuming, the hole is judged from the same place again. Its part says how far the client
    already received that stream (`a5~27`), so that resume does not send those events again; in a
    recreated stream, whose sequences the old cursor's epoch does not name, it cannot say so, and
    a resume told `complete: false` may repeat them.
    """

    __slots__ = ("_parts", "_index", "_caps", "_stamp", "_held", "_through", "_released", "received", "_late")

    # `_through`: for each held stream the client's cursor names the incarnation of, how far it
    # received that stream (a stream missing: recreated, its sequences not comparable, not tracked).

    def __init__(self, start: Cursor, recovering: set[str], live: set[str], base: Cursor, replayed: Cursor,
                 since: Cursor, holes: set[str] | frozenset[str] = frozenset(), ends: Mapping[str, int] | None = None,
                 late: Mapping[str, int] | None = None):
        # The streams read take the epochs the replay found; the others keep the hub's.
        current = {**base.epochs, **start.epochs}
        epochs = dict(current)
        for stream in holes:
            held = since.epoch(stream)
            if held is not None:
                epochs[stream] = held
            else:
                epochs.pop(stream, None)
        stamp = Cursor(base, epochs).raised_to(replayed)
        # A stream live channels also read is capped where live delivery paused (the lower wins);
        # `late` is the session's own dict, which a subscribe arriving during this catch-up fills.
        self._late = late if late is not None else {}
        self._caps: dict[str, int | None] = {}
        # How far an earlier replay of this cursor sent each stream (`~`), in the incarnation the
        # cursor names (or any, for a part without epoch, as everywhere): a recreated stream's
        # sequences are not the ones it counted. Never past the stream's end (`ends`): a hand-made
        # `~2**64` would otherwise leave a floor no live event ever passes.
        named = {stream for stream in recovering if since.epoch(stream) in (None, current.get(stream))}
        received = self.received = {
            stream: through if ends is None else min(through, ends[stream])
            for stream, through in since.through.items()
            if stream in named and (ends is None or stream in ends)}
        for stream in recovering:
            cap = stamp.position(stream) if stream in live else None
            self._caps[stream] = cap
            # What an earlier replay already sent (`~`) is not sent again (`replay_into` skips it).
            here = max(start.position(stream), received.get(stream, 0)) if stream not in holes \
                else start.position(stream)
            stamp[stream] = here if cap is None else min(cap, here)
        self._held = {stream: since.position(stream) for stream in holes}
        # How far the client received a held stream; only in the incarnation its cursor names.
        self._through: dict[str, int] = {}
        for stream in holes & named:
            cap = self._cap(stream)
            through = received.get(stream, 0)
            self._through[stream] = through if cap is None else min(through, cap)
        stamp.update(self._held)
        order = sorted(stamp)
        self._stamp = stamp
        self._released = Cursor(stamp, current)
        self._parts = [stamp.part(stream, stamp[stream], self._through.get(stream, 0)) for stream in order]
        self._index = {stream: index for index, stream in enumerate(order)}

    def current(self) -> str:
        """The cursor before any event is read: a snapshot's events all carry it."""
        return ".".join(self._parts)

    def advance(self, stream: str, sequence: int) -> str:
        """The cursor once the event at `sequence` in `stream` is read."""
        cap = self._cap(stream)
        if cap is not None and cap < sequence:
            sequence = cap
        parts = self._parts
        held = self._held.get(stream)
        if held is None:
            part = self._stamp.part(stream, sequence)
        elif stream in self._through:
            # The position stays at the cursor's; the client has this stream's events up to here.
            through = max(self._through[stream], sequence)
            if cap is not None and cap < through:
                through = cap
            self._through[stream] = through
            part = self._stamp.part(stream, held, through)
        else:
            return ".".join(parts)  # a recreated stream: nothing moves
        if len(parts) == 1:
            return part
        parts[self._index[stream]] = part
        return ".".join(parts)

    def released(self, read: Cursor) -> Cursor:
        """The client's cursor once the catch-up is over: each stream read at the last event read (`read`), holes released.

        `recovered` carries it, and live events after it are raised to it (never further: a
        stream live channels also read stays capped where live delivery paused, so the held-back
        live events of those channels still count).
        """
        released = Cursor(self._released)
        for stream in self._caps:
            # Not below what the stamps said already: `~` of a held stream, `~` raised into a stream without hole.
            already = self._through.get(stream, 0) if stream in self._held else self._stamp.position(stream)
            sequence = max(read.position(stream), already)
            cap = self._cap(stream)
            released[stream] = sequence if cap is None else min(cap, sequence)
        return released

    def _cap(self, stream: str) -> int | None:
        """Where ids in `stream` stop: where live delivery paused, or where a later subscribe found it (the lower)."""
        cap = self._caps[stream]
        late = self._late.get(stream)
        if late is not None and (cap is None or late < cap):
            return late
        return cap
