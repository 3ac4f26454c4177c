"""What tests compare a `recovered` message's cursor with: any cursor the gateway could have issued."""

from __future__ import annotations

import json
import re

from notifier.model.cursor import InvalidCursor, decode_cursor


class AnyCursor:
    """Equal to a string that decodes as a cursor (so `{"id": ANY_CURSOR}` fails on a missing or malformed id)."""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            decode_cursor(other)
        except InvalidCursor:
            return False
        return True

    def __repr__(self) -> str:
        return "<any cursor>"


ANY_CURSOR = AnyCursor()
_RECOVERED_BLOCK = re.compile(rb"id: ([^\n]+)\nevent: recovered\ndata: (\{[^\n]*\})\n\n")


def recovered_block(raw: bytes) -> dict[str, object]:
    """The data of an SSE `recovered` block, checked to carry its cursor both as `id:` and in the data."""
    match = _RECOVERED_BLOCK.fullmatch(raw)
    assert match is not None, raw
    data = json.loads(match.group(2))
    assert data["id"] == match.group(1).decode() == ANY_CURSOR, raw
    return {name: value for name, value in data.items() if name != "id"}
