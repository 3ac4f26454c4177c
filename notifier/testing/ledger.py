"""What each client should hold, compared with what it received: gaps, duplicates, reorders, leaks.

The truth is what JetStream stored: every event of a run with its stream, sequence and envelope
id. A client must receive, for every stream, exactly the stored events it may see on its channels
after its starting position, in stored (sequence) order, once each. Events across streams have no
order to keep: the gateway merges streams by store time, which two streams do not share.

A gap is excused only where the gateway said so: a resume from cursor C answered
`complete: false` covers, in each stream, the sequences after C up to the first event of that
stream the client received after the resume. In a stream that keeps only N messages per subject
(market data) a missing event is counted as conflated instead: such a stream discards older
ticks of an instrument by design, and the live feed hands on the newest one (protocol.md
section 8). Anything else missing is a silent gap. A duplicate is never excused, not even after
`complete: false`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from notifier.model.channels import ChannelPattern


@dataclass(frozen=True)
class StoredRecord:
    """One stored event as the ledger sees it."""

    stream: str
    sequence: int
    id: str
    type: str
    key: str | None
    user_id: str | None
    label: str = ""  # the publisher's channel label and number, for messages ("order.event#17")
    conflating: bool = False  # its stream keeps only N messages per subject


@dataclass
class Resume:
    """A (re)connection that resumed from `positions`: where in the received list it began, and its answer."""

    positions: dict[str, int]
    start_index: int
    complete: bool | None = None
    cursor: str = ""  # the cursor it resumed from, as sent
    ended: str = ""  # how the connection ended ("dropped", "close 1012 ...", "error ...", "eof")


@dataclass
class ClientRecord:
    """What one client asked for and what it received, in order."""

    name: str
    user_id: str
    is_admin: bool
    patterns: list[ChannelPattern]
    start: dict[str, int]
    received: list[str] = field(default_factory=list)
    resumes: list[Resume] = field(default_factory=list)
    cursors: list[str] = field(default_factory=list)  # the `id` each received event came with


@dataclass
class Verdict:
    """The comparison for one client."""

    client: str
    expected: int = 0
    received: int = 0
    gaps: list[StoredRecord] = field(default_factory=list)
    excused: int = 0
    conflated: int = 0
    duplicates: list[str] = field(default_factory=list)
    reorders: list[tuple[str, int, int]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    # Runs of consecutive expected events (in one stream) that are missing: (first, last).
    gap_ranges: list[tuple[StoredRecord, StoredRecord]] = field(default_factory=list)
    # For the first few duplicates: where each copy came (connection, cursor), to find the cause.
    duplicate_details: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """No silent gap, no duplicate, no reorder, nothing the client should not have seen."""
        return not (self.gaps or self.duplicates or self.reorders or self.foreign)

    def first_problem(self) -> str:
        """A one-line account of the first thing wrong (the first missing range, when there is one)."""
        if self.gaps:
            first, last = self.gap_ranges[0]
            return (f"{self.client}: {len(self.gaps)} events missing without complete:false; first missing range "
                    f"{first.stream}{first.sequence}..{last.stream}{last.sequence} ({first.label} .. {last.label})")
        if self.duplicates:
            details = "".join(f"\n  - {detail}" for detail in self.duplicate_details)
            return f"{self.client}: {len(self.duplicates)} duplicates, first {self.duplicates[0]}{details}"
        if self.reorders:
            stream, before, after = self.reorders[0]
            return f"{self.client}: out of order in stream {stream}: {after} after {before}"
        if self.foreign:
            return f"{self.client}: received events it may not see, first {self.foreign[0]}"
        return f"{self.client}: exact"


def visible(record: StoredRecord, client: ClientRecord) -> bool:
    """Whether the client may see this event on its channels."""
    if record.user_id is not None and record.user_id != client.user_id and not client.is_admin:
        return False
    return any(pattern.matches(record.type, record.key) for pattern in client.patterns)


def judge(client: ClientRecord, stored: list[StoredRecord]) -> Verdict:
    """Compare one client's received events with the stored truth."""
    verdict = Verdict(client.name, received=len(client.received))
    by_id = {record.id: record for record in stored}
    expected = [record for record in stored
                if record.sequence > client.start.get(record.stream, 0) and visible(record, client)]
    verdict.expected = len(expected)
    seen: set[str] = set()
    last_in_stream: dict[str, int] = {}
    # Where each received event sits, to find the first event of a stream after a resume.
    received_positions: list[tuple[int, StoredRecord]] = []
    for index, event_id in enumerate(client.received):
        record = by_id.get(event_id)
        if record is None or not visible(record, client):
            verdict.foreign.append(event_id)
            continue
        if event_id in seen:
            # Never excused, not even after `complete: false`: a replay dropped part-way says in its
            # ids how far it went (`~`), so a resume sends nothing twice (streams are not recreated here).
            verdict.duplicates.append(event_id)
            if len(verdict.duplicate_details) < 3:
                verdict.duplicate_details.append(_duplicate_detail(client, event_id, index))
            continue
        seen.add(event_id)
        previous = last_in_stream.get(record.stream)
        if previous is not None and record.sequence < previous:
            verdict.reorders.append((record.stream, previous, record.sequence))
        last_in_stream[record.stream] = max(previous or 0, record.sequence)
        received_positions.append((index, record))
    windows = _declared_windows(client, received_positions)
    previous_missing: dict[str, bool] = {}
    for record in expected:
        if record.id in seen:
            previous_missing[record.stream] = False
            continue
        if any(stream == record.stream and low < record.sequence < high for stream, low, high in windows):
            verdict.excused += 1
            previous_missing[record.stream] = False
            continue
        if record.conflating:
            verdict.conflated += 1
            previous_missing[record.stream] = False
            continue
        verdict.gaps.append(record)
        if previous_missing.get(record.stream):
            index = next(i for i in range(len(verdict.gap_ranges) - 1, -1, -1)
                         if verdict.gap_ranges[i][0].stream == record.stream)
            verdict.gap_ranges[index] = (verdict.gap_ranges[index][0], record)
        else:
            verdict.gap_ranges.append((record, record))
        previous_missing[record.stream] = True
    return verdict


def _declared_windows(client: ClientRecord,
                      received_positions: list[tuple[int, StoredRecord]]) -> list[tuple[str, int, int]]:
    """(stream, after, before) ranges that a `complete: false` answer declared lost."""
    windows = []
    for resume in client.resumes:
        if resume.complete is not False:
            continue
        streams = {record.stream for _, record in received_positions} | set(resume.positions)
        for stream in streams:
            after = resume.positions.get(stream, 0)
            following = next((record.sequence for index, record in received_positions
                              if index >= resume.start_index and record.stream == stream), None)
            windows.append((stream, after, following if following is not None else 2**64))
    return windows


def _connection_of(client: ClientRecord, index: int) -> int:
    """The number of the connection (resume) that delivered received event `index`."""
    number = 0
    for position, resume in enumerate(client.resumes):
        if resume.start_index <= index:
            number = position
    return number


def _duplicate_detail(client: ClientRecord, event_id: str, index: int) -> str:
    """Both copies of a duplicate: their connections, cursors, and how the connections between them began and ended."""
    first = client.received.index(event_id)

    def where(position: int) -> str:
        number = _connection_of(client, position)
        resume = client.resumes[number] if client.resumes else None
        cursor = client.cursors[position] if position < len(client.cursors) else "?"
        if resume is None:
            return f"#{position} id {cursor}"
        return (f"#{position} id {cursor} on connection {number} (resumed from {resume.cursor or '?'}, "
                f"complete {resume.complete}, began at #{resume.start_index}, ended {resume.ended or '?'})")

    between = [f"{number}: from {resume.cursor} complete {resume.complete} ended {resume.ended}"
               for number, resume in enumerate(client.resumes)
               if first < resume.start_index <= index]
    return f"{event_id}: first {where(first)}; again {where(index)}; connections between: {between}"
