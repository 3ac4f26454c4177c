"""The NATS subject scheme: where an event is stored, and which subjects a reader may scan.

    <subject_root>.pub.<key>.<type tokens...>             public events
    <subject_root>.user.<user id>.<key>.<type tokens...>  events private to one user

`<key>` is `_` when the event has none. A key or user id that is not a plain subject token
(letters, digits, `-`, `_`, `/`, `+`, `=`, `@`) is written as `~` + unpadded base64url of its
UTF-8 bytes. A replay for one user filters on `pub.>` and `user.<that user>.>` only, so the
server never reads another user's events for it.
"""

from __future__ import annotations

import base64
import re

from notifier.jetstream.streams import StreamDefinition
from notifier.model.channels import ChannelPattern, tokens_overlap
from notifier.model.events import Envelope

_PLAIN_TOKEN = re.compile(r"^[A-Za-z0-9_\-/+=@]+$")
NO_KEY = "_"


def encode_token(value: str) -> str:
    """A user id or key as one subject token, reversible and never colliding with `_`."""
    if value != NO_KEY and _PLAIN_TOKEN.match(value):
        return value
    return "~" + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def subject_for(envelope: Envelope, stream: StreamDefinition) -> str:
    """The subject an envelope is published on."""
    key = NO_KEY if envelope.key is None else encode_token(envelope.key)
    if envelope.user_id is None:
        return f"{stream.subject_root}.pub.{key}.{envelope.type}"
    return f"{stream.subject_root}.user.{encode_token(envelope.user_id)}.{key}.{envelope.type}"


def _key_filter(pattern: ChannelPattern) -> str:
    return "*" if pattern.key is None else encode_token(pattern.key)


def filters_for(
    patterns: list[ChannelPattern], stream: StreamDefinition, user_id: str, is_admin: bool
) -> list[str]:
    """Non-overlapping JetStream filter subjects covering what this viewer may read on these channels.

    JetStream refuses overlapping filters on one consumer, so when two channels overlap the
    reader widens to the viewer's whole scope and the caller filters by channel in process.
    """
    user_scope = "*" if is_admin else encode_token(user_id)
    precise = []
    for pattern in patterns:
        type_part = ".".join(pattern.tokens)
        key = _key_filter(pattern)
        precise.append(f"{stream.subject_root}.pub.{key}.{type_part}")
        precise.append(f"{stream.subject_root}.user.{user_scope}.{key}.{type_part}")
    precise = list(dict.fromkeys(precise))
    if not _any_overlap(precise):
        return precise
    return [f"{stream.subject_root}.pub.>", f"{stream.subject_root}.user.{user_scope}.>"]


def _any_overlap(subjects: list[str]) -> bool:
    split = [tuple(subject.split(".")) for subject in subjects]
    return any(
        tokens_overlap(split[first], split[second])
        for first in range(len(split))
        for second in range(first + 1, len(split))
    )
