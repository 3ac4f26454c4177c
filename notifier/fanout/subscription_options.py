"""The options a client subscribes with: a message shape, decoded by msgspec from a subscribe or SSE query.

A module of its own so the delivery modules hold no msgspec type: those are compiled by mypyc
(`setup.py`), and a `msgspec.Struct` defined in a compiled module no longer decodes.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from notifier.model.events import Priority, SessionFilter


class SubscriptionOptions(msgspec.Struct, forbid_unknown_fields=True):
    """The `options` of a subscribe message (SSE: the same names as query parameters)."""

    priority: Priority | None = None
    limit: Annotated[float, msgspec.Meta(gt=0, le=100_000)] | None = None
    snapshot: Literal["last"] | Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    # Only events whose `sessionId` is this one, live and from history (see `Identity.narrowed_to`).
    session: SessionFilter | None = None
