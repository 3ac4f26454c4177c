"""The event catalog's rules and its validation, without NATS."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from catalog_examples import EXAMPLES, SIGNAL

from notifier.catalog import Catalog, CatalogConfigError, load_catalog
from notifier.catalog.payloads import PAYLOADS
from notifier.jetstream.streams import load_streams
from notifier.model.events import Envelope, InvalidEvent
from notifier.model.limits import MAX_SAFE_INTEGER
from notifier.settings import default_streams_dir

CATALOG = load_catalog(default_streams_dir())


def refusal(event_type: str, payload: dict, path: str = "$") -> InvalidEvent:
    with pytest.raises(InvalidEvent) as raised:
        CATALOG.checked(Envelope(type=event_type, payload=payload), path)
    return raised.value


def test_every_type_of_the_issue_is_in_the_catalog():
    """The catalog names each event type issue 15 lists, and the examples cover exactly those."""
    assert set(PAYLOADS) == set(EXAMPLES)


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_a_valid_payload_of_each_type_passes(event_type):
    """A realistic payload of every catalog type is accepted as it is."""
    envelope = Envelope(type=event_type, payload=EXAMPLES[event_type])
    assert CATALOG.checked(envelope).payload == EXAMPLES[event_type]


def test_a_value_out_of_range_names_its_path_under_payload():
    """`confidence: 1.5` is refused naming `$.payload.confidence` and the rule."""
    error = refusal("signal.new", {**SIGNAL, "confidence": 1.5})
    assert error.field == "$.payload.confidence"
    assert "<= 1.0" in str(error)


def test_a_missing_field_names_its_path():
    """A payload without `signal_id` is refused naming `$.payload.signal_id`."""
    payload = {name: value for name, value in SIGNAL.items() if name != "signal_id"}
    assert refusal("signal.new", payload).field == "$.payload.signal_id"


def test_a_bad_list_item_names_its_index():
    """A non-number take-profit level is named by its index in the list."""
    assert refusal("signal.new", {**SIGNAL, "take_profit": [1.0, "high"]}).field == "$.payload.take_profit[1]"


def test_an_envelope_in_a_batch_is_named_by_its_position():
    """With a batch path the error names `$[2].payload...`."""
    assert refusal("alert.system", {"alert_id": "a", "level": "LOUD", "message": "m"}, "$[2]").field == \
        "$[2].payload.level"


def test_an_unknown_type_under_a_strict_pattern_is_refused():
    """`backtest.complete` (a typo of backtest.completed) is refused naming `$.type` and the strict pattern."""
    error = refusal("backtest.complete", {"task_id": "bt-1"})
    assert error.field == "$.type"
    assert "backtest.>" in str(error)


def test_an_unknown_type_outside_strict_patterns_passes():
    """`order.note` is not in the catalog and `order.>` is not strict: any payload passes."""
    envelope = Envelope(type="order.note", payload={"anything": [1, 2]})
    assert CATALOG.checked(envelope) == envelope


def test_extra_payload_fields_are_kept():
    """A field the catalog does not name yet passes through untouched."""
    payload = {**EXAMPLES["portfolio.updated"], "currency": "USD"}
    assert CATALOG.checked(Envelope(type="portfolio.updated", payload=payload)).payload == payload


def test_a_broadcast_type_is_raised_to_p0():
    """`alert.system` published at p2 is stored at p0."""
    envelope = Envelope(type="alert.system", payload=EXAMPLES["alert.system"], priority="p2")
    assert CATALOG.checked(envelope).priority == "p0"


def test_only_market_data_is_conflatable_by_default():
    """market.* is conflatable; order and position events are not."""
    assert [CATALOG.is_conflatable(name) for name in ("market.ticker", "order.updated", "position.updated")] == \
        [True, False, False]


def test_a_catalog_file_with_an_unknown_rule_is_refused(tmp_path: Path):
    """A misspelt rule name in catalog.toml is an error naming the file and the field."""
    (tmp_path / "catalog.toml").write_text('broadcasts = ["alert.system"]\n')
    with pytest.raises(CatalogConfigError, match="broadcasts"):
        load_catalog(tmp_path)


def test_a_catalog_pattern_with_a_key_is_refused():
    """Rules name types: `market.ticker:BTC` is refused."""
    with pytest.raises(CatalogConfigError, match="without ':key'"):
        Catalog(conflatable=["market.ticker:BTC"])


def test_the_stream_loader_skips_the_catalog_file():
    """catalog.toml beside the stream definitions is not read as a stream."""
    assert sorted(definition.name for definition in load_streams(default_streams_dir())) == \
        ["NOTIFIER_ACCOUNT", "NOTIFIER_MARKET"]


def test_an_integer_beyond_javascript_precision_is_refused():
    """`positions_count` of 30 digits is refused naming `$.payload.positions_count` and the bound."""
    payload = {"cash": 1.0, "total_value": 1.0, "pnl": 0.0, "positions_count": 123456789012345678901234567890}
    error = refusal("portfolio.updated", payload)
    assert error.field == "$.payload.positions_count"
    assert f"<= {MAX_SAFE_INTEGER}" in str(error)


def _integer_bounds(info: msgspec.inspect.Type) -> list[tuple[int | None, int | None]]:
    """The (ge, le) bounds of every integer inside a type, descending into unions, lists and structs."""
    if isinstance(info, msgspec.inspect.IntType):
        return [(info.ge if info.ge is not None else info.gt, info.le if info.le is not None else info.lt)]
    if isinstance(info, msgspec.inspect.StructType):
        return [bound for field in info.fields for bound in _integer_bounds(field.type)]
    children = [getattr(info, name) for name in ("item_type", "key_type", "value_type") if hasattr(info, name)]
    children += list(getattr(info, "types", None) or getattr(info, "item_types", None) or ())
    return [bound for child in children for bound in _integer_bounds(child)]


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_every_integer_field_is_bounded_by_the_safe_integer(event_type):
    """Each int field of a catalog payload lies within ±MAX_SAFE_INTEGER (JavaScript's exact integers)."""
    for low, high in _integer_bounds(msgspec.inspect.type_info(PAYLOADS[event_type])):
        assert low is not None and low >= -MAX_SAFE_INTEGER, (event_type, low, high)
        assert high is not None and high <= MAX_SAFE_INTEGER, (event_type, low, high)
