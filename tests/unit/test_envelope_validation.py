"""`validated`: an envelope built in Python meets the rules `POST /api/publish` decodes with."""

from __future__ import annotations

import pytest

from notifier.model.events import Envelope, InvalidEvent, decode_envelope, encode_envelope, validated


@pytest.mark.parametrize(("envelope", "field"), [
    (Envelope(type="order.x", priority="p9"), "$.priority"),  # type: ignore[arg-type]
    (Envelope(type="order.x", user_id="a b"), "$.userId"),
    (Envelope(type="order filled"), "$.type"),
    (Envelope(type="order.x", key="a,b"), "$.key"),
    (Envelope(type="order.x", payload=[1]), "$.payload"),  # type: ignore[arg-type]
    (Envelope(type="order.x", payload={"when": object()}), "$.payload"),
], ids=["priority", "user_id", "type", "key", "payload-array", "payload-unencodable"])
def test_an_envelope_breaking_a_rule_is_refused_naming_the_field(envelope, field):
    """Each envelope the HTTP decoder would refuse raises InvalidEvent whose field is the one to blame."""
    with pytest.raises(InvalidEvent) as raised:
        validated(envelope)
    assert raised.value.field == field


def test_a_valid_envelope_comes_back_as_the_gateway_would_decode_it():
    """A valid envelope is returned equal to what decoding its JSON gives."""
    envelope = Envelope(type="order.x", user_id="alice", key="BTC/USDT", payload={"n": 1}, priority="p1")
    assert validated(envelope) == decode_envelope(encode_envelope(envelope)) == envelope


def test_an_envelope_in_a_batch_is_named_by_its_place():
    """Checked as the third envelope of a batch, a too long source is named `$[2].source`."""
    with pytest.raises(InvalidEvent) as raised:
        validated(Envelope(type="order.x", source="s" * 200), "$[2]")
    assert (raised.value.field, "$[2].source" in str(raised.value)) == ("$[2].source", True)
