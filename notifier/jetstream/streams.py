"""JetStream stream definitions, loaded from `streams_config/*.toml` and applied idempotently."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from notifier.catalog import CATALOG_FILE
from notifier.model.channels import tokens_match, tokens_overlap
from notifier.model.permissions import FILE_NAME as PERMISSIONS_FILE_NAME

log = logging.getLogger(__name__)


class StreamConfigError(ValueError):
    """A stream definition file is missing a field or holds a bad value."""


@dataclass(frozen=True)
class StreamDefinition:
    """One stream: its JetStream name, cursor id, subject root, routed event types and limits."""

    name: str
    cursor_id: str
    subject_root: str
    types: tuple[tuple[str, ...], ...]
    default: bool
    storage: str
    max_age_seconds: float
    max_bytes: int
    max_msgs_per_subject: int
    duplicate_window_seconds: float
    replicas: int

    @property
    def subjects(self) -> list[str]:
        """The subjects the stream captures."""
        return [f"{self.subject_root}.>"]

    def holds_type(self, event_type: str) -> bool:
        """Whether this stream's `types` list names this event type."""
        tokens = event_type.split(".")
        return any(tokens_match(pattern, tokens) for pattern in self.types)

    def jetstream_config(self) -> StreamConfig:
        """The nats-py StreamConfig for this definition."""
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE if self.storage == "file" else StorageType.MEMORY,
            max_age=self.max_age_seconds,
            max_bytes=self.max_bytes,
            max_msgs_per_subject=self.max_msgs_per_subject,
            duplicate_window=self.duplicate_window_seconds,
            num_replicas=self.replicas,
            discard=DiscardPolicy.OLD,
            allow_direct=True,
        )


class StreamSet:
    """All configured streams, with routing from event type to stream."""

    def __init__(self, definitions: list[StreamDefinition]):
        defaults = [definition for definition in definitions if definition.default]
        if len(defaults) != 1:
            raise StreamConfigError(f"exactly one stream must have default = true, found {len(defaults)}")
        cursor_ids = [definition.cursor_id for definition in definitions]
        if len(set(cursor_ids)) != len(cursor_ids):
            raise StreamConfigError(f"cursor_id values must be unique, got {cursor_ids}")
        self.definitions = definitions
        self.default = defaults[0]
        self.by_cursor_id = {definition.cursor_id: definition for definition in definitions}

    def __iter__(self):
        return iter(self.definitions)

    def for_type(self, event_type: str) -> StreamDefinition:
        """The stream that stores events of this type."""
        for definition in self.definitions:
            if not definition.default and definition.holds_type(event_type):
                return definition
        return self.default

    def for_channel(self, channel_tokens: tuple[str, ...]) -> list[StreamDefinition]:
        """The streams that may hold events matching a channel pattern."""
        chosen = []
        for definition in self.definitions:
            if definition.default:
                # The default stream takes every unlisted type, unless another stream covers the whole channel.
                covered = any(
                    _covers(pattern, channel_tokens)
                    for other in self.definitions if other is not definition
                    for pattern in other.types
                )
                if not covered:
                    chosen.append(definition)
            elif any(tokens_overlap(pattern, channel_tokens) for pattern in definition.types):
                chosen.append(definition)
        return chosen


def _covers(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """Whether every subject matching `inner` also matches `outer`."""
    for position, token in enumerate(outer):
        if token == ">":
            return len(inner) > position
        if position >= len(inner) or inner[position] == ">":
            return False
        if token != "*" and (inner[position] == "*" or inner[position] != token):
            return False
    return len(inner) == len(outer)


_REQUIRED = ("name", "cursor_id", "subject_root", "types")


def load_streams(directory: Path, replicas_override: int | None = None) -> StreamSet:
    """Read every stream `*.toml` in the folder into a StreamSet, naming the file and field of any error."""
    # The catalog's rules and the channel permissions live beside the streams, in files of their own shape.
    files = sorted(path for path in Path(directory).glob("*.toml") if path.name not in (CATALOG_FILE, PERMISSIONS_FILE_NAME))
    if not files:
        raise StreamConfigError(f"no stream definitions (*.toml) in {directory}")
    definitions = []
    for path in files:
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise StreamConfigError(f"{path}: {error}") from None
        for name in _REQUIRED:
            if name not in data:
                raise StreamConfigError(f"{path}: missing field {name!r}")
        limits = data.get("jetstream", {})
        if limits.get("storage", "file") not in ("file", "memory"):
            raise StreamConfigError(f"{path}: jetstream.storage must be \"file\" or \"memory\"")
        if not str(data["cursor_id"]).isalpha() or not str(data["cursor_id"]).islower():
            raise StreamConfigError(f"{path}: cursor_id must be lowercase letters")
        definitions.append(
            StreamDefinition(
                name=data["name"],
                cursor_id=data["cursor_id"],
                subject_root=data["subject_root"],
                types=tuple(tuple(pattern.split(".")) for pattern in data["types"]),
                default=bool(data.get("default", False)),
                storage=limits.get("storage", "file"),
                max_age_seconds=float(limits.get("max_age_seconds", 0)),
                max_bytes=int(limits.get("max_bytes", -1)),
                max_msgs_per_subject=int(limits.get("max_msgs_per_subject", -1)),
                duplicate_window_seconds=float(limits.get("duplicate_window_seconds", 120)),
                replicas=replicas_override or int(limits.get("replicas", 1)),
            )
        )
    return StreamSet(definitions)


async def apply_streams(jetstream: JetStreamContext, streams: StreamSet) -> None:
    """Create missing streams and update changed ones; running it twice changes nothing."""
    for definition in streams:
        wanted = definition.jetstream_config()
        try:
            info = await jetstream.stream_info(definition.name)
        except NotFoundError:
            await jetstream.add_stream(wanted)
            log.info("created stream %s", definition.name)
            continue
        if _differs(info.config, wanted):
            await jetstream.update_stream(wanted)
            log.info("updated stream %s", definition.name)


def _differs(current: StreamConfig, wanted: StreamConfig) -> bool:
    compared = ("subjects", "max_age", "max_bytes", "max_msgs_per_subject", "duplicate_window", "num_replicas",
                "storage", "allow_direct", "discard")
    return any(getattr(current, name) != getattr(wanted, name) for name in compared)
