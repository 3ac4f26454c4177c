"""Stream definitions are data, applied idempotently: created when missing, updated when changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nats
import pytest

from notifier.jetstream.streams import StreamConfigError, apply_streams, load_streams
from notifier.settings import default_streams_dir


async def test_applying_twice_changes_nothing(nats_server):
    """Applying the shipped definitions twice leaves the same streams, with their configured limits."""
    streams = load_streams(default_streams_dir())
    client = await nats.connect(nats_server.url)
    jetstream = client.jetstream()
    await apply_streams(jetstream, streams)
    await apply_streams(jetstream, streams)
    market = await jetstream.stream_info("NOTIFIER_MARKET")
    account = await jetstream.stream_info("NOTIFIER_ACCOUNT")
    await client.close()
    assert market.config.max_msgs_per_subject == 16
    assert account.config.max_age == 7 * 24 * 3600


async def test_changed_setting_is_updated_not_an_error(nats_server):
    """A changed max age in the definitions updates the existing stream."""
    streams = load_streams(default_streams_dir())
    client = await nats.connect(nats_server.url)
    jetstream = client.jetstream()
    await apply_streams(jetstream, streams)
    streams.definitions[0] = dataclasses.replace(streams.definitions[0], max_age_seconds=3600)
    await apply_streams(jetstream, streams)
    info = await jetstream.stream_info(streams.definitions[0].name)
    await client.close()
    assert info.config.max_age == 3600


def test_types_route_to_their_stream():
    """Market types go to the market stream; orders and unlisted types to the default account stream."""
    streams = load_streams(default_streams_dir())
    assert streams.for_type("market.ticker").cursor_id == "m"
    assert streams.for_type("order.event").cursor_id == "a"
    assert streams.for_type("custom.thing").cursor_id == "a"


def test_channel_reads_only_streams_that_may_hold_it():
    """`market.>` reads the market stream only; `>` reads both."""
    streams = load_streams(default_streams_dir())
    assert [d.cursor_id for d in streams.for_channel(("market", ">"))] == ["m"]
    assert sorted(d.cursor_id for d in streams.for_channel((">",))) == ["a", "m"]


def test_missing_field_names_file_and_field(tmp_path: Path):
    """A definition without `cursor_id` is refused naming the file and the field."""
    (tmp_path / "broken.toml").write_text('name = "X"\nsubject_root = "x"\ntypes = [">"]\ndefault = true\n')
    with pytest.raises(StreamConfigError, match=r"broken.toml: missing field 'cursor_id'"):
        load_streams(tmp_path)
