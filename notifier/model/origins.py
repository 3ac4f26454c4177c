"""Browser origins as values: `NOTIFIER_ALLOWED_ORIGINS` parsed and origins normalised (pure)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

ANY_ORIGIN = "*"


def parse_allowed_origins(raw: str | None) -> frozenset[str]:
    """`NOTIFIER_ALLOWED_ORIGINS` as a set of normalised origins (`scheme://host[:port]`) or `*`."""
    if not raw:
        return frozenset()
    origins = set()
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        if item == ANY_ORIGIN:
            origins.add(ANY_ORIGIN)
            continue
        origin = normalise_origin(item)
        if origin is None:
            raise ValueError(f"NOTIFIER_ALLOWED_ORIGINS: {item!r} is not an origin (scheme://host[:port], or *)")
        origins.add(origin)
    return frozenset(origins)


def normalise_origin(text: str) -> str | None:
    """`scheme://host[:port]` in lower case without a trailing slash, or None if `text` is not an origin."""
    parts = urlsplit(text.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username or parts.password:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def is_loopback_name(name: str) -> bool:
    """Whether a host name (no port, no brackets) always means this machine: `localhost`, 127.0.0.0/8 or ::1."""
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
