"""Every fixed limit a client or producer can run into, in one place (docs/operations.md lists them).

Limits that are settings (`NOTIFIER_MAX_CHANNELS`, rates, sizes) are read in `notifier.settings`;
their defaults are here when code outside settings needs them. Internal tuning (cache sizes,
timers) stays beside the code it tunes.
"""

from __future__ import annotations

# JSON nesting accepted wherever JSON enters (publish bodies, client messages, stored events),
# arrays and objects counting the outermost one (`{"payload":{"a":[1]}}` is 3 deep):
# deeper documents are refused before msgspec decodes them (it recurses; ~1,000 levels crash).
MAX_JSON_DEPTH = 64
# A channel: at most 16 dot-separated tokens and 256 bytes (parsed patterns are cached).
MAX_TOKENS = 16
MAX_CHANNEL_BYTES = 256
# The default of NOTIFIER_MAX_CHANNELS, per connection and per `?channels=` list.
MAX_CHANNELS = 50
# A resume cursor's wire form, and the largest JetStream sequence.
MAX_CURSOR_LENGTH = 512
MAX_SEQUENCE = 2**64 - 1
# The largest integer JavaScript's Number holds exactly (and far inside a signed 64-bit integer):
# bounds `timestamp` and `ttl`.
MAX_SAFE_INTEGER = 2**53 - 1
# Replays or snapshots running at once on one connection.
MAX_RECOVERIES = 8
# POST /api/publish: envelopes per request, and the request body. Each envelope must also fit in one
# NATS message: the server's max_payload (1 MiB by default, the embedded server's too) less its headers.
MAX_EVENTS_PER_PUBLISH = 1000
MAX_REQUEST_BYTES = 16 * 1024 * 1024
# GET /api/history `limit`.
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000
# Stored events one history read (GET /api/history, events-history, a `snapshot: N`) reads at most,
# before its session, permission and ttl filters: a session is no part of a NATS subject, so
# finding few of its events could otherwise read a whole stream. The page then says `partial`.
MAX_HISTORY_SCAN = 10_000
# RFC 6455 5.5: a close frame's payload is at most 125 bytes, 2 of them the code.
MAX_CLOSE_REASON = 123
