"""The synchronous core: hub, channel index, frames, sessions, hand-over, rate limits, outboxes."""
