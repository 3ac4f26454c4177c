"""Channel permissions as pure rules: which type each rule decides, and what a channel pattern lets through."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.model.channels import parse_channel, tokens_match
from notifier.model.permissions import (
    DEFAULT_PERMISSIONS,
    Permissions,
    PermissionsError,
    Rule,
    RuleSet,
    load_permissions,
    parse_permissions,
    specificity,
)
from notifier.settings import Settings, SettingsError, default_streams_dir

SHIPPED = {
    "subscribe": {">": ["*"], "market.>": ["*", "anonymous"], "market.l2.>": ["pro", "admin"], "admin.>": ["admin"]},
    "publish": {"order.>": ["publisher"], "admin.>": ["admin"]},
}


@pytest.fixture
def permissions() -> Permissions:
    return parse_permissions(SHIPPED, "test")


def test_the_most_specific_rule_decides_a_type(permissions):
    """`market.l2.btc` is decided by `market.l2.>`, not by `market.>` or `>`."""
    assert permissions.subscribe.deciding(["market", "l2", "btc"]).text == "market.l2.>"
    assert permissions.subscribe.deciding(["market", "ticker"]).text == "market.>"
    assert permissions.subscribe.deciding(["order", "filled"]).text == ">"


def test_a_user_without_pro_may_see_tickers_but_not_l2(permissions):
    """A token without roles sees `market.ticker` and `order.filled` but not `market.l2.book` or `admin.audit`."""
    access = permissions.access(frozenset())
    assert access.allows("market.ticker") and access.allows("order.filled")
    assert not access.allows("market.l2.book") and not access.allows("admin.audit")


def test_role_pro_may_see_l2(permissions):
    """A token with role `pro` sees `market.l2.book`."""
    assert permissions.access(frozenset({"pro"})).allows("market.l2.book")


def test_anonymous_sees_market_channels_only(permissions):
    """A client without a token sees `market.ticker`, not `order.filled` (rule `>` is for tokens only) nor l2."""
    access = permissions.access(frozenset(), anonymous=True)
    assert access.allows("market.ticker")
    assert not access.allows("order.filled") and not access.allows("market.l2.book")


def test_refusal_names_the_channel_and_the_rule(permissions):
    """`admin.>` for a user without `admin` is refused with a message naming the channel and the rule."""
    refusal = permissions.access(frozenset({"pro"})).refusal([parse_channel("order.*"), parse_channel("admin.>")])
    assert refusal == "channel 'admin.>' is not allowed for roles pro: rule 'admin.>' (roles admin)"


def test_wildcard_over_allowed_and_refused_types_is_restricted_not_refused(permissions):
    """`market.>` without `pro` is accepted but restricted; with `pro` it is neither."""
    user, pro = permissions.access(frozenset()), permissions.access(frozenset({"pro"}))
    channel = parse_channel("market.>")
    assert user.refusal([channel]) is None and user.restricts(channel)
    assert pro.refusal([channel]) is None and not pro.restricts(channel)


def test_channel_outside_every_refused_rule_is_not_restricted(permissions):
    """`market.ticker:BTC` holds no refused type for a user: its deliveries need no check."""
    assert not permissions.access(frozenset()).restricts(parse_channel("market.ticker:BTC"))


def test_types_no_rule_matches_are_refused():
    """With rules for `order.>` only, `risk.*` is refused, naming that no rule matches it."""
    access = parse_permissions({"subscribe": {"order.>": ["*"]}}, "test").access(frozenset())
    assert not access.allows("risk.limit")
    assert access.refusal([parse_channel("risk.*")]).endswith("no permissions rule matches its event types")
    assert access.refusal([parse_channel(">")]) is None and access.restricts(parse_channel(">"))


def test_types_longer_than_a_shadowing_rule_are_still_found():
    """With `order.*` open and `order.>` for `ops`, `order.>` is restricted: `order.fill.part` falls to `order.>`."""
    access = parse_permissions({"subscribe": {"order.*": ["*"], "order.>": ["ops"]}}, "test").access(frozenset())
    assert access.allows("order.filled") and not access.allows("order.fill.part")
    assert access.restricts(parse_channel("order.>"))
    assert not access.restricts(parse_channel("order.*"))


def test_default_permissions_keep_every_channel_open_and_publishing_to_publishers():
    """Without a file, any token may see every type and only role `publisher` may publish."""
    assert DEFAULT_PERMISSIONS.access(frozenset()).unrestricted
    assert DEFAULT_PERMISSIONS.publish_refusal(frozenset({"publisher"}), "order.filled") is None
    assert not DEFAULT_PERMISSIONS.may_publish_some(frozenset({"trader"}))


def test_publish_refusal_names_the_type_and_the_rule(permissions):
    """A publisher may publish `order.filled` but not `admin.audit`, and the refusal names the rule."""
    assert permissions.publish_refusal(frozenset({"publisher"}), "order.filled") is None
    assert permissions.publish_refusal(frozenset({"publisher"}), "admin.audit") == (
        "type 'admin.audit' may not be published by roles publisher: rule 'admin.>' (roles admin)")


@pytest.mark.parametrize("data, fragment", [
    ({"subscribe": {"order.>": "publisher"}}, "'order.>': must be a list of role names"),
    ({"subscribe": {"order.>>": ["*"]}}, "[subscribe] 'order.>>'"),
    ({"publish": {"order.filled:BTC": ["*"]}}, "without ':key'"),
    ({"subscriptions": {}}, "unknown table 'subscriptions'"),
])
def test_bad_rules_are_refused_naming_the_key(data, fragment):
    """A rule that breaks the file's shape raises PermissionsError naming the file and the key."""
    with pytest.raises(PermissionsError, match="^perms.toml: ") as raised:
        parse_permissions(data, "perms.toml")
    assert fragment in str(raised.value)


def test_missing_default_file_means_the_built_in_rules(tmp_path: Path):
    """A missing `permissions.toml` in the streams folder gives the built-in permissions; a named one is required."""
    assert load_permissions(tmp_path / "permissions.toml", required=False) is DEFAULT_PERMISSIONS
    with pytest.raises(PermissionsError, match="no such file"):
        load_permissions(tmp_path / "permissions.toml", required=True)


def test_shipped_file_parses_with_the_documented_rules():
    """`streams_config/permissions.toml` loads: `market.l2.>` for `pro` and `admin`, `admin.>` for `admin`."""
    shipped = load_permissions(default_streams_dir() / "permissions.toml", required=True)
    rules = {rule.text: rule.roles for rule in shipped.subscribe.rules}
    assert rules["market.l2.>"] == {"pro", "admin"} and rules["admin.>"] == {"admin"}


def test_settings_place_the_file_in_the_streams_folder_unless_named(tmp_path: Path):
    """`permissions_path` is `<streams dir>/permissions.toml`, or NOTIFIER_PERMISSIONS_FILE when set."""
    assert Settings(streams_dir=tmp_path).permissions_path == tmp_path / "permissions.toml"
    named = Settings.from_environment({"NOTIFIER_PERMISSIONS_FILE": "/etc/perms.toml"})
    assert named.permissions_path == Path("/etc/perms.toml")


def test_anonymous_access_takes_yes_or_no_only():
    """NOTIFIER_ANONYMOUS_ACCESS=true turns it on; `maybe` is refused naming the variable."""
    assert Settings.from_environment({"NOTIFIER_ANONYMOUS_ACCESS": "true"}).anonymous_access
    with pytest.raises(SettingsError, match="NOTIFIER_ANONYMOUS_ACCESS='maybe'"):
        Settings.from_environment({"NOTIFIER_ANONYMOUS_ACCESS": "maybe"})


# -- the channel verdicts against brute force over a small alphabet --

LITERALS = ("a", "b")
segment = st.sampled_from(LITERALS + ("*",))
patterns = st.builds(
    lambda head, tail: tuple(head) + tail,
    st.lists(segment, min_size=0, max_size=3),
    st.sampled_from(((), (">",))),
).filter(lambda pattern: 0 < len(pattern) <= 3)
rule_sets = st.dictionaries(patterns, st.sets(st.sampled_from(("pro", "*")), max_size=2), max_size=5)
# Every literal subject up to 4 segments (one past the longest pattern: longer ones add nothing)
# over the rules' letters and one they never name.
SUBJECTS = [list(tokens) for length in range(1, 5) for tokens in itertools.product(LITERALS + ("c",), repeat=length)]


@settings(max_examples=300, deadline=None)
@given(rule_sets, patterns, st.sets(st.sampled_from(("pro",))))
def test_channel_verdicts_match_every_type_on_the_channel(rules, channel, roles):
    """A channel is refused exactly when no type on it is allowed, and restricted exactly when one is refused."""
    permissions = Permissions(RuleSet(Rule(pattern, frozenset(names)) for pattern, names in rules.items()),
                              RuleSet([]))
    access = permissions.access(frozenset(roles))
    pattern = parse_channel(".".join(channel))
    verdicts = [access.allows(".".join(subject)) for subject in SUBJECTS if tokens_match(channel, subject)]
    assert (access.refusal([pattern]) is None) == any(verdicts)
    assert access.restricts(pattern) == (not all(verdicts))


@settings(max_examples=200, deadline=None)
@given(rule_sets, st.sampled_from(SUBJECTS))
def test_deciding_rule_is_the_most_specific_match(rules, subject):
    """The deciding rule matches the type and no other matching rule is more specific."""
    rule_set = RuleSet(Rule(pattern, frozenset(names)) for pattern, names in rules.items())
    matching = [pattern for pattern in rules if tokens_match(pattern, subject)]
    decided = rule_set.deciding(subject)
    if not matching:
        assert decided is None
    else:
        assert decided is not None and decided.pattern == max(matching, key=specificity)
