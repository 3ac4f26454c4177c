"""A token trie from channel patterns to subscribers, so matching an event costs its depth, not the client count."""

from __future__ import annotations

from typing import Generic, Hashable, TypeVar

from notifier.channels import ChannelPattern

Subscriber = TypeVar("Subscriber", bound=Hashable)


class _Node(Generic[Subscriber]):
    __slots__ = ("children", "any_key", "by_key", "rest_any_key", "rest_by_key")

    def __init__(self) -> None:
        self.children: dict[str, _Node[Subscriber]] = {}
        # Subscribers whose pattern ends here, for any key or for one key.
        self.any_key: set[Subscriber] = set()
        self.by_key: dict[str, set[Subscriber]] = {}
        # Subscribers whose pattern ends with `>` here (matching one or more further tokens).
        self.rest_any_key: set[Subscriber] = set()
        self.rest_by_key: dict[str, set[Subscriber]] = {}

    def empty(self) -> bool:
        return not (self.children or self.any_key or self.by_key or self.rest_any_key or self.rest_by_key)


class ChannelIndex(Generic[Subscriber]):
    """Channel pattern -> subscribers; `match` returns everyone whose pattern matches an event."""

    def __init__(self) -> None:
        self._root: _Node[Subscriber] = _Node()
        self.count = 0

    def add(self, pattern: ChannelPattern, subscriber: Subscriber) -> None:
        """Register a subscriber under a pattern (idempotent)."""
        node = self._root
        tokens = pattern.tokens
        ends_with_rest = tokens[-1] == ">"
        for token in tokens[:-1] if ends_with_rest else tokens:
            node = node.children.setdefault(token, _Node())
        target = self._bucket(node, pattern.key, ends_with_rest, create=True)
        if subscriber not in target:
            target.add(subscriber)
            self.count += 1

    def remove(self, pattern: ChannelPattern, subscriber: Subscriber) -> None:
        """Forget a subscriber under a pattern, pruning empty branches."""
        path = [self._root]
        tokens = pattern.tokens
        ends_with_rest = tokens[-1] == ">"
        walked = tokens[:-1] if ends_with_rest else tokens
        for token in walked:
            child = path[-1].children.get(token)
            if child is None:
                return
            path.append(child)
        node = path[-1]
        target = self._bucket(node, pattern.key, ends_with_rest, create=False)
        if target is None or subscriber not in target:
            return
        target.discard(subscriber)
        self.count -= 1
        if not target and pattern.key is not None:
            (node.rest_by_key if ends_with_rest else node.by_key).pop(pattern.key, None)
        for depth in range(len(walked), 0, -1):
            if path[depth].empty():
                del path[depth - 1].children[walked[depth - 1]]
            else:
                break

    @staticmethod
    def _bucket(node: _Node[Subscriber], key: str | None, rest: bool, create: bool) -> set[Subscriber] | None:
        if key is None:
            return node.rest_any_key if rest else node.any_key
        keyed = node.rest_by_key if rest else node.by_key
        if create:
            return keyed.setdefault(key, set())
        return keyed.get(key)

    def match(self, type_tokens: list[str], key: str | None, into: set[Subscriber]) -> None:
        """Add to `into` every subscriber whose pattern matches this event type and key."""
        self._walk(self._root, type_tokens, 0, key, into)

    def _walk(self, node: _Node[Subscriber], tokens: list[str], position: int, key: str | None,
              into: set[Subscriber]) -> None:
        if position < len(tokens):
            # A `>` here matches the remaining (at least one) tokens.
            if node.rest_any_key:
                into.update(node.rest_any_key)
            if key is not None and node.rest_by_key:
                keyed = node.rest_by_key.get(key)
                if keyed:
                    into.update(keyed)
            child = node.children.get(tokens[position])
            if child is not None:
                self._walk(child, tokens, position + 1, key, into)
            star = node.children.get("*")
            if star is not None:
                self._walk(star, tokens, position + 1, key, into)
            return
        if node.any_key:
            into.update(node.any_key)
        if key is not None and node.by_key:
            keyed = node.by_key.get(key)
            if keyed:
                into.update(keyed)
