"""Channel permissions as data: which roles may subscribe to which event types, and publish which.

Rules map an event-type pattern (`market.>`, `order.*`, `admin.>`) to the role names that may use
it. For one event type, the most specific matching pattern decides, compared from the left: a
literal segment beats `*`, and `*` beats `>` (`market.l2.>` decides `market.l2.btc` over
`market.>`). A type no pattern matches is refused to everyone. Role names are the token's
`roles` claim, plus `*` for any valid token; a client without a token has only `anonymous`.

A channel pattern a client subscribes to may hold types of several rules: it is refused only
when no type on it is allowed, and otherwise delivers the allowed types only (`market.>` to a
user without role `pro` never delivers `market.l2.*`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from notifier.model.channels import MAX_TOKENS, ChannelPattern, InvalidChannel, parse_type_pattern, tokens_match

FILE_NAME = "permissions.toml"
ANY_TOKEN = "*"
ANONYMOUS = "anonymous"
# A subject token no rule can name (rule segments are letters, digits, `_` and `-`): a witness
# subject built with it matches only the rules that have a wildcard there.
_FRESH = "\x00"
_CACHE_SIZE = 4096


class PermissionsError(ValueError):
    """The permissions file is unreadable or breaks a rule; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry: an event-type pattern and the role names that may use it."""

    pattern: tuple[str, ...]
    roles: frozenset[str]

    @property
    def text(self) -> str:
        """The pattern as written in the file."""
        return ".".join(self.pattern)

    def admits(self, names: frozenset[str]) -> bool:
        """Whether any of these role names is one the rule lists."""
        return not self.roles.isdisjoint(names)

    def describe(self) -> str:
        """`rule 'admin.>' (roles admin)`, for error messages."""
        return f"rule {self.text!r} (roles {', '.join(sorted(self.roles)) or 'none'})"


def specificity(pattern: Sequence[str]) -> tuple[int, ...]:
    """A sort key: larger is more specific (literal 2, `*` 1, `>` 0, segment by segment from the left)."""
    return tuple(0 if token == ">" else 1 if token == "*" else 2 for token in pattern)


class RuleSet:
    """The rules of one kind (subscribe or publish), most specific first."""

    def __init__(self, rules: Iterable[Rule]):
        self.rules = sorted(rules, key=lambda rule: specificity(rule.pattern), reverse=True)
        self._deciders: dict[tuple[str, ...], tuple[Rule | None, ...]] = {}

    def deciding(self, type_tokens: list[str]) -> Rule | None:
        """The rule that decides this literal event type: the most specific that matches, or None."""
        return next((rule for rule in self.rules if tokens_match(rule.pattern, type_tokens)), None)

    def deciders(self, pattern: tuple[str, ...]) -> tuple[Rule | None, ...]:
        """Every rule that decides some event type a channel pattern matches (None: types no rule matches).

        For each candidate rule and length, the subject that matches both the pattern and the rule
        with a fresh token at every wildcard matches the fewest other rules of any such subject:
        the rule decides some type on the channel exactly when it decides one of those.
        """
        found = self._deciders.get(pattern)
        if found is not None:
            return found
        # Past the longest pattern plus one, every rule matches alike: longer subjects add nothing.
        longest = min(max([len(pattern), *(len(rule.pattern) for rule in self.rules)]) + 1, MAX_TOKENS)
        deciders: list[Rule | None] = []
        for candidate in [*self.rules, None]:
            other = pattern if candidate is None else candidate.pattern
            for length in _common_lengths(pattern, other, longest):
                subject = _witness(pattern, other, length)
                if subject is not None and self.deciding(subject) is candidate:
                    deciders.append(candidate)
                    break
        if len(self._deciders) >= _CACHE_SIZE:
            self._deciders.clear()
        found = self._deciders[pattern] = tuple(deciders)
        return found


def _common_lengths(first: tuple[str, ...], second: tuple[str, ...], longest: int) -> range:
    """The subject lengths both patterns can match: their own length, or any from it on when ending in `>`."""
    low = max(len(first), len(second))
    high = min(longest if pattern[-1] == ">" else len(pattern) for pattern in (first, second))
    return range(low, high + 1)


def _witness(first: tuple[str, ...], second: tuple[str, ...], length: int) -> list[str] | None:
    """A subject of `length` tokens matching both patterns, fresh wherever neither names a literal."""
    subject = []
    for position in range(length):
        literals = {pattern[position] for pattern in (first, second)
                    if position < len(pattern) and pattern[position] not in ("*", ">")}
        if len(literals) > 1:
            return None
        subject.append(literals.pop() if literals else _FRESH)
    return subject if tokens_match(first, subject) and tokens_match(second, subject) else None


class ChannelAccess:
    """What one set of role names may subscribe to: per event type, and per channel pattern."""

    __slots__ = ("rules", "names", "unrestricted", "_types")

    def __init__(self, rules: RuleSet, names: frozenset[str]):
        self.rules = rules
        self.names = names
        # Every type allowed: live delivery and history skip the per-event check.
        self.unrestricted = not any(rule is None or not rule.admits(names) for rule in rules.deciders((">",)))
        self._types: dict[str, bool] = {}

    def allows(self, event_type: str) -> bool:
        """Whether events of this type may be delivered to these roles."""
        if self.unrestricted:
            return True
        allowed = self._types.get(event_type)
        if allowed is None:
            rule = self.rules.deciding(event_type.split("."))
            allowed = rule is not None and rule.admits(self.names)
            if len(self._types) >= _CACHE_SIZE:
                self._types.clear()
            self._types[event_type] = allowed
        return allowed

    def restricts(self, pattern: ChannelPattern) -> bool:
        """Whether some event type on this channel is refused, so each delivery on it must be checked."""
        return not self.unrestricted and any(rule is None or not rule.admits(self.names)
                                             for rule in self.rules.deciders(pattern.tokens))

    def refusal(self, patterns: Iterable[ChannelPattern]) -> str | None:
        """Why the first channel on which no event type is allowed is refused, or None when every one may be seen."""
        if self.unrestricted:
            return None
        for pattern in patterns:
            deciders = self.rules.deciders(pattern.tokens)
            if any(rule is not None and rule.admits(self.names) for rule in deciders):
                continue
            refusing = next((rule for rule in deciders if rule is not None), None)
            because = (refusing.describe() if refusing is not None
                       else "no permissions rule matches its event types")
            return f"channel {pattern.text!r} is not allowed for roles {_names(self.names)}: {because}"
        return None


def _names(names: frozenset[str]) -> str:
    """The roles a message names: the token's own (`*` goes without saying), or `none`."""
    return ", ".join(sorted(names - {ANY_TOKEN})) or "none"


class Permissions:
    """The subscribe and publish rules, and the access each set of role names has (shared, made once)."""

    def __init__(self, subscribe: RuleSet, publish: RuleSet, source: str = "built-in default"):
        self.subscribe = subscribe
        self.publish = publish
        self.source = source
        self._access: dict[frozenset[str], ChannelAccess] = {}

    def access(self, roles: frozenset[str], anonymous: bool = False) -> ChannelAccess:
        """What a token with these roles (or a client without a token) may subscribe to."""
        names = frozenset((ANONYMOUS,)) if anonymous else roles | {ANY_TOKEN}
        access = self._access.get(names)
        if access is None:
            if len(self._access) >= _CACHE_SIZE:
                self._access.clear()
            access = self._access[names] = ChannelAccess(self.subscribe, names)
        return access

    def may_publish_some(self, roles: frozenset[str]) -> bool:
        """Whether these roles may publish any type at all (checked before the body is read)."""
        names = roles | {ANY_TOKEN}
        return any(rule.admits(names) for rule in self.publish.rules)

    def publish_roles(self) -> list[str]:
        """Every role some publish rule lists, for the message refusing a token with none of them."""
        return sorted({role for rule in self.publish.rules for role in rule.roles})

    def publish_refusal(self, roles: frozenset[str], event_type: str) -> str | None:
        """Why these roles may not publish this type, or None when they may."""
        rule = self.publish.deciding(event_type.split("."))
        if rule is not None and rule.admits(roles | {ANY_TOKEN}):
            return None
        because = rule.describe() if rule is not None else "no permissions rule matches it"
        return f"type {event_type!r} may not be published by roles {_names(roles | {ANY_TOKEN})}: {because}"


def parse_permissions(data: dict, source: str) -> Permissions:
    """Permissions from the file's parsed TOML: `[subscribe]` and `[publish]` tables of pattern = [roles]."""
    unknown = set(data) - {"subscribe", "publish"}
    if unknown:
        raise PermissionsError(f"{source}: unknown table {sorted(unknown)[0]!r} (expected subscribe, publish)")
    sets = []
    for table in ("subscribe", "publish"):
        entries = data.get(table, {})
        if not isinstance(entries, dict):
            raise PermissionsError(f"{source}: [{table}] must be a table of \"pattern\" = [\"role\", ...]")
        rules = []
        for text, roles in entries.items():
            try:
                tokens = parse_type_pattern(text)
            except InvalidChannel as error:
                raise PermissionsError(f"{source}: [{table}] {text!r}: {error}") from None
            if not isinstance(roles, list) or not all(isinstance(role, str) and role for role in roles):
                raise PermissionsError(f"{source}: [{table}] {text!r}: must be a list of role names")
            rules.append(Rule(tokens, frozenset(roles)))
        sets.append(RuleSet(rules))
    return Permissions(sets[0], sets[1], source)


# Without a permissions file: any token may subscribe to any channel, role `publisher` publishes.
DEFAULT_PERMISSIONS = parse_permissions({"subscribe": {">": [ANY_TOKEN]}, "publish": {">": ["publisher"]}},
                                        "built-in default")
EVERY_CHANNEL = DEFAULT_PERMISSIONS.access(frozenset())


def load_permissions(path: Path, required: bool) -> Permissions:
    """The permissions in a TOML file; the built-in default when it is missing and not `required`."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise PermissionsError(f"{path}: no such file") from None
        return DEFAULT_PERMISSIONS
    except OSError as error:
        raise PermissionsError(f"{path}: {error.strerror or error}") from None
    try:
        return parse_permissions(tomllib.loads(text), str(path))
    except tomllib.TOMLDecodeError as error:
        raise PermissionsError(f"{path}: {error}") from None
