"""JSON error responses: a code, a message naming the rule, and the field when there is one."""

from __future__ import annotations

from aiohttp import web


def json_error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    """`{"error": {"code": ..., "message": ..., "field": ...}}` with the given status."""
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)
