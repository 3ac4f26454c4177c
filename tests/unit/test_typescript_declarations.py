"""The TypeScript declarations in clients/js/ describe what the gateway really sends."""

from __future__ import annotations

import json
import re
from pathlib import Path

from notifier.catalog import load_catalog
from notifier.catalog.export import SET_ON_DELIVERY, typescript
from notifier.fanout.trading_frames import BACKTEST_NAMES
from notifier.model.events import Envelope, encode_envelope
from notifier.settings import default_streams_dir

DECLARATIONS = Path(__file__).resolve().parents[2] / "clients" / "js" / "notifier.d.ts"


def interface_fields(text: str, name: str) -> dict[str, str]:
    """`field` (with a trailing `?` when optional) -> its declared type, in `export interface <name>`."""
    body = re.search(rf"export interface {name}\b[^{{]*\{{\n(.*?)\n\}}", text, re.DOTALL)
    assert body is not None, f"no interface {name}"
    return dict(re.findall(r"^  (\w+\??): (.+);$", body.group(1), re.MULTILINE))


def test_the_received_envelope_declares_every_delivered_field_required_and_null_where_sent():
    """Every field of a delivered envelope is required in `Envelope`, nullable exactly where the gateway may send null."""
    delivered = json.loads(encode_envelope(Envelope(type="order.filled").completed("demo")))
    declared = interface_fields(typescript(load_catalog(default_streams_dir())), "Envelope")
    assert set(declared) == set(delivered)
    nullable = {field for field, rendered in declared.items() if "null" in rendered.split(" | ")}
    assert nullable == {field for field, value in delivered.items() if value is None}
    assert nullable.isdisjoint(SET_ON_DELIVERY)


def test_the_backtest_stream_event_names_are_the_gateways():
    """`BacktestStreamEvents` in notifier.d.ts names exactly the `event:` names the backtest stream sends."""
    assert set(interface_fields(DECLARATIONS.read_text(), "BacktestStreamEvents")) == set(BACKTEST_NAMES.values())
