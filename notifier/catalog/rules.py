"""The catalog's rules: which types are strict, broadcast or conflatable, and the one validation at publish.

HTTP `POST /api/publish`, the Python `Publisher` and `notifier publish` all call `Catalog.checked`,
so a payload is held to one contract whichever way it comes in.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

import msgspec

from notifier.catalog.payloads import PAYLOADS, Payload
from notifier.model.channels import ChannelPattern, InvalidChannel, parse_type_pattern, tokens_match
from notifier.model.events import Envelope, InvalidEvent
from notifier.settings import default_streams_dir

CATALOG_FILE = "catalog.toml"
_RULES = ("strict", "broadcast", "conflatable")
# Distinct event types remembered per rule lookup; past it the memo starts afresh (types are producer-chosen).
_MEMO_SIZE = 4096
_AT = re.compile(r" - at `\$([^`]*)`$")


class CatalogConfigError(ValueError):
    """`catalog.toml` is unreadable or names a rule or pattern the catalog cannot use."""


class _Patterns:
    """Channel patterns of one rule, with a bounded memo: the hub asks once per live event."""

    def __init__(self, patterns: Iterable[tuple[str, ...]]):
        self.patterns = tuple(patterns)
        self._memo: dict[str, bool] = {}

    def __contains__(self, event_type: str) -> bool:
        found = self._memo.get(event_type)
        if found is None:
            tokens = event_type.split(".")
            found = any(tokens_match(pattern, tokens) for pattern in self.patterns)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[event_type] = found
        return found

    def texts(self) -> list[str]:
        return [".".join(pattern) for pattern in self.patterns]


class Catalog:
    """Payload types by event type, and the strict, broadcast and conflatable patterns."""

    def __init__(self, strict: Iterable[str] = (), broadcast: Iterable[str] = (), conflatable: Iterable[str] = (),
                 payloads: dict[str, type[Payload]] | None = None):
        self.payloads = dict(PAYLOADS if payloads is None else payloads)
        self.strict = _Patterns(_parsed("strict", strict))
        self.broadcast = _Patterns(_parsed("broadcast", broadcast))
        self.conflatable = _Patterns(_parsed("conflatable", conflatable))
        # The broadcast rule as channel patterns: what a resuming session reads besides its own channels.
        self.broadcast_patterns = [ChannelPattern(pattern) for pattern in self.broadcast.patterns]

    def is_broadcast(self, event_type: str) -> bool:
        """Whether events of this type reach every connected client (a private one: every client of its user)."""
        return event_type in self.broadcast

    def is_conflatable(self, event_type: str) -> bool:
        """Whether a rate limit may replace a waiting event of this type by a newer one of the same key."""
        return event_type in self.conflatable

    def checked(self, envelope: Envelope, path: str = "$") -> Envelope:
        """The envelope as the catalog wants it stored, or InvalidEvent naming the field (`$.payload.confidence`).

        A known type's payload must match its Struct; an unknown type passes unless a strict
        pattern covers it. A broadcast type is raised to priority p0. `path` is where the
        envelope sits in the request body (`$[2]` in a batch), for the error's field path.
        """
        payload_type = self.payloads.get(envelope.type)
        if payload_type is None:
            if envelope.type in self.strict:
                raise InvalidEvent(f"unknown event type {envelope.type!r}: the catalog lists every type under "
                                   f"{self._strict_pattern(envelope.type)!r} - at `{path}.type`")
        else:
            try:
                msgspec.convert(envelope.payload, payload_type)
            except msgspec.ValidationError as error:
                raise InvalidEvent(_in_payload(envelope.type, str(error), path)) from None
        if envelope.priority != "p0" and self.is_broadcast(envelope.type):
            envelope = msgspec.structs.replace(envelope, priority="p0")
        return envelope

    def _strict_pattern(self, event_type: str) -> str:
        tokens = event_type.split(".")
        return next(".".join(pattern) for pattern in self.strict.patterns if tokens_match(pattern, tokens))


def _parsed(rule: str, texts: Iterable[str]) -> list[tuple[str, ...]]:
    patterns = []
    for text in texts:
        try:
            patterns.append(parse_type_pattern(text))
        except InvalidChannel as error:
            raise CatalogConfigError(f"{rule}: {error}") from None
    return patterns


def _in_payload(event_type: str, message: str, path: str) -> str:
    """msgspec's message about a payload, its `$...` path moved under the envelope's `payload`."""
    at = _AT.search(message)
    if at:
        message = message[:at.start()] + f" - at `{path}.payload{at.group(1)}`"
    else:
        message = f"{message} - at `{path}.payload`"
    return f"{event_type} payload: {message}"


def load_catalog(directory: Path | None = None) -> Catalog:
    """The rules in `<directory>/catalog.toml`; without that file, those of the packaged streams_config/."""
    path = Path(directory) / CATALOG_FILE if directory is not None else None
    if path is None or not path.exists():
        path = default_streams_dir() / CATALOG_FILE
        if not path.exists():
            return Catalog()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise CatalogConfigError(f"{path}: {error}") from None
    unknown = sorted(set(data) - set(_RULES))
    if unknown:
        raise CatalogConfigError(f"{path}: unknown field(s) {', '.join(unknown)}; expected {', '.join(_RULES)}")
    for rule in _RULES:
        if not isinstance(data.get(rule, []), list) or not all(isinstance(item, str) for item in data.get(rule, [])):
            raise CatalogConfigError(f"{path}: {rule} must be a list of type patterns")
    try:
        return Catalog(**{rule: data.get(rule, []) for rule in _RULES})
    except CatalogConfigError as error:
        raise CatalogConfigError(f"{path}: {error}") from None
