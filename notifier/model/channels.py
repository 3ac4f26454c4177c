"""Channel patterns: an event type with `*` and `>` wildcards, optionally narrowed to one `:key`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from notifier.model.close_codes import ErrorCode
from notifier.model.errors import NotifierError
from notifier.model.events import KEY_PATTERN
from notifier.model.limits import MAX_CHANNEL_BYTES, MAX_TOKENS

# Full matches of ASCII-only rules: `$` would also let a segment or key end in a newline.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_KEY = re.compile(KEY_PATTERN)


class InvalidChannel(NotifierError, ValueError):
    """A channel pattern broke a rule; the message says which."""

    code = ErrorCode.INVALID_CHANNEL


@dataclass(frozen=True, slots=True)
class ChannelPattern:
    """A parsed channel: type tokens (`*` = one token, final `>` = one or more) and an optional key."""

    tokens: tuple[str, ...]
    key: str | None = None
    # The pattern as the client wrote it. Made once: parsed patterns are shared (`_parse`), and a
    # session's subscriptions are keyed by it, so every connection on a channel shares one string
    # instead of keeping its own (59 bytes per subscription, bench.connection_memory).
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        joined = ".".join(self.tokens)
        object.__setattr__(self, "text", joined if self.key is None else f"{joined}:{self.key}")

    def matches(self, event_type: str, event_key: str | None) -> bool:
        """Whether an event of this type and key is delivered on this channel."""
        return self.matches_tokens(event_type.split("."), event_key)

    def matches_tokens(self, type_tokens: list[str], event_key: str | None) -> bool:
        """`matches`, for an event type already split into its tokens."""
        if self.key is not None and self.key != event_key:
            return False
        return tokens_match(self.tokens, type_tokens)


def parse_channel(text: str) -> ChannelPattern:
    """Parse `order.*`, `order.>` or `market.ticker:BTC/USDT`, naming the rule a bad one breaks."""
    if not isinstance(text, str) or not text:
        raise InvalidChannel("channel must be a non-empty string")
    if len(text) > MAX_CHANNEL_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_CHANNEL_BYTES:
        raise InvalidChannel(f"channel {text[:32]!r}...: longer than {MAX_CHANNEL_BYTES} bytes")
    return _parse(text)


# Thousands of connections subscribe the same few channels; they share one parsed pattern.
@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> ChannelPattern:
    type_part, separator, key = text.partition(":")
    if separator and not _KEY.match(key):
        raise InvalidChannel(f"channel {text!r}: key after ':' must be non-empty, without spaces or commas")
    if separator and len(key) > 128:
        raise InvalidChannel(f"channel {text!r}: key is longer than 128 characters")
    tokens = tuple(type_part.split("."))
    if len(tokens) > MAX_TOKENS:
        raise InvalidChannel(f"channel {text!r}: more than {MAX_TOKENS} dot-separated segments")
    for position, token in enumerate(tokens):
        if token == ">" and position != len(tokens) - 1:
            raise InvalidChannel(f"channel {text!r}: '>' is only allowed as the last segment")
        if token not in ("*", ">") and not _TOKEN.fullmatch(token):
            raise InvalidChannel(
                f"channel {text!r}: segment {token!r} must be letters, digits, '_' or '-', or a wildcard '*' or '>'"
            )
    return ChannelPattern(tokens, key if separator else None)


def tokens_match(pattern: tuple[str, ...] | list[str], tokens: list[str]) -> bool:
    """NATS-style match of literal tokens against a pattern with `*` and a final `>`."""
    for position, expected in enumerate(pattern):
        if expected == ">":
            return len(tokens) > position
        if position >= len(tokens):
            return False
        if expected != "*" and expected != tokens[position]:
            return False
    return len(tokens) == len(pattern)


def tokens_overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    """Whether two wildcard patterns can both match one literal subject."""
    for position in range(max(len(first), len(second))):
        left = first[position] if position < len(first) else None
        right = second[position] if position < len(second) else None
        if left == ">" or right == ">":
            # `>` needs at least one more token, which the other side must be able to supply.
            return left is not None and right is not None
        if left is None or right is None:
            return False
        if left != "*" and right != "*" and left != right:
            return False
    return True


def parse_channel_list(text: str) -> list[ChannelPattern]:
    """Parse a comma-separated `?channels=` value, dropping empty items and duplicates."""
    seen: dict[str, ChannelPattern] = {}
    for item in text.split(","):
        item = item.strip()
        if item and item not in seen:
            seen[item] = parse_channel(item)
    return list(seen.values())


def parse_type_pattern(text: str) -> tuple[str, ...]:
    """A pattern of event types without a key (`market.l2.>`), as the rules files write them; InvalidChannel if not."""
    pattern = parse_channel(text)
    if pattern.key is not None:
        raise InvalidChannel(f"{text!r}: a rule names event types, without ':key'")
    return pattern.tokens
