"""Pure logic of the trading streams: a viewer narrowed to a session, and the SSE names and frames of the streams."""

from __future__ import annotations

from notifier.fanout.trading_frames import alert_event_name, backtest_event_name, backtest_framing
from notifier.model.events import Envelope, StoredEvent, encode_envelope
from notifier.model.identity import Identity


def stored(envelope: Envelope, sequence: int = 1) -> StoredEvent:
    return StoredEvent("a", sequence, envelope, encode_envelope(envelope))


def test_narrowed_viewer_sees_only_its_sessions_events():
    """Alice narrowed to s1 sees her s1 event and a public s1 event, not s2's, not an unsessioned one, not bob's s1."""
    viewer = Identity("alice").narrowed_to("s1")
    seen = [viewer.can_see(Envelope(type="order.filled", user_id=user, session_id=session))
            for user, session in [("alice", "s1"), (None, "s1"), ("alice", "s2"), ("alice", None), ("bob", "s1")]]
    assert seen == [True, True, False, False, False]


def test_narrowing_to_no_session_changes_nothing():
    """`narrowed_to(None)` is the identity itself."""
    alice = Identity("alice")
    assert alice.narrowed_to(None) is alice


def test_backtest_phases_are_named_for_the_page():
    """completed -> complete, failed, progress and started keep their names; another phase is named by itself."""
    names = [backtest_event_name(Envelope(type=f"backtest.{phase}"))
             for phase in ("progress", "completed", "failed", "started", "paused")]
    assert names == ["progress", "complete", "failed", "started", "paused"]


def test_alert_names_are_lower_case_levels_or_none():
    """WARNING -> warning; a missing, non-string or multi-word level gives no name."""
    names = [alert_event_name(Envelope(type="alert.system", payload=payload))
             for payload in ({"level": "WARNING"}, {}, {"level": 3}, {"level": "very bad"})]
    assert names == ["warning", None, None, None]


def test_backtest_frame_carries_the_cursor_the_name_and_the_payload_alone():
    """A progress event becomes `id:`, `event: progress` and `data:` with just its payload."""
    framing = backtest_framing(chunked=False)
    event = stored(Envelope(type="backtest.progress", key="t1", payload={"task_id": "t1", "progress": 5}))
    assert framing.replayed(event, "a1") == b'id: a1\nevent: progress\ndata: {"task_id":"t1","progress":5}\n\n'


def test_backtest_stream_ends_after_the_written_outcome_only():
    """`ends_after` is false for frames without the outcome and true once the outcome's frame is among them."""
    framing = backtest_framing(chunked=True)
    progress = framing.replayed(stored(Envelope(type="backtest.progress", key="t1"), 1), "a1")
    assert framing.ends_after is not None and not framing.ends_after([progress])
    outcome = framing.replayed(stored(Envelope(type="backtest.completed", key="t1"), 2), "a2")
    assert framing.ends_after([progress, outcome])
