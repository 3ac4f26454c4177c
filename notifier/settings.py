"""Gateway settings, read once from `NOTIFIER_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

PACKAGE_ROOT = Path(__file__).resolve().parent


def default_streams_dir() -> Path:
    """The `streams_config/` folder beside the package (editable installs) or in the working directory."""
    beside_package = PACKAGE_ROOT.parent / "streams_config"
    if beside_package.is_dir():
        return beside_package
    return Path.cwd() / "streams_config"


EVENT_LOOPS = ("uvloop", "asyncio")


class SettingsError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway reads from its environment, with the documented defaults."""

    nats_url: str | None = None
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8080
    jwt_secret: str | None = None
    jwt_public_key: Path | None = None
    jwt_audience: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ping_interval: float = 25.0
    pong_timeout: float = 10.0
    sse_ping_interval: float = 15.0
    sse_retry_ms: int = 2000
    auth_timeout: float = 5.0
    outbox_bytes: int = 1024 * 1024
    max_events_per_second: int = 100
    streams_dir: Path = field(default_factory=default_streams_dir)
    stream_replicas: int | None = None
    # The newest events kept in memory per stream, so resumes close behind live need no JetStream read.
    recent_events: int = 10_000
    recent_events_bytes: int = 16 * 1024 * 1024
    # uvloop writes to sockets in C: measured 1.5 us less CPU per delivery than asyncio's own loop.
    event_loop: str = "uvloop"
    # Limits on what one client can make the gateway hold or do (docs/operations.md section 10).
    max_channels: int = 50
    max_client_message_bytes: int = 64 * 1024
    client_messages_per_second: float = 20.0
    client_messages_burst: int = 50
    http_idle_timeout: float = 60.0
    connections_per_ip_per_minute: int = 0
    # Browser origins besides the gateway's own that may open a WebSocket and use CORS (comma-separated, `*`).
    allowed_origins: str | None = None

    @property
    def nats_servers(self) -> list[str]:
        """The configured NATS servers as a list (empty means: start an embedded one)."""
        if not self.nats_url:
            return []
        return [server.strip() for server in self.nats_url.split(",") if server.strip()]

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with some fields replaced (tests and the CLI use this)."""
        return replace(self, **changes)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read `NOTIFIER_*` variables; a bad value raises SettingsError naming the variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for settings_field in fields(cls):
            variable = "NOTIFIER_" + settings_field.name.upper()
            raw = environ.get(variable)
            if raw is None or raw == "":
                continue
            values[settings_field.name] = _convert(variable, raw, settings_field.type)
        if "port" not in values and environ.get("PORT"):
            # Platforms that run the Procfile assign the port in PORT.
            values["port"] = _convert("PORT", environ["PORT"], "int")
        settings = cls(**values)
        _check(settings)
        return settings


def _convert(variable: str, raw: str, annotation: object) -> object:
    kind = str(annotation)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if kind.startswith("Path"):
            return Path(raw)
    except ValueError:
        expected = "a whole number" if kind.startswith("int") else "a number"
        raise SettingsError(f"{variable}={raw!r}: expected {expected}") from None
    return raw


def _check(settings: Settings) -> None:
    positive = ("ping_interval", "pong_timeout", "sse_ping_interval", "auth_timeout", "outbox_bytes", "max_channels",
                "max_client_message_bytes", "client_messages_per_second", "client_messages_burst",
                "http_idle_timeout")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"NOTIFIER_{name.upper()}={getattr(settings, name)!r}: must be greater than 0")
    for name in ("recent_events", "recent_events_bytes", "connections_per_ip_per_minute"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"NOTIFIER_{name.upper()}={getattr(settings, name)!r}: must be 0 (keep none) or more")
    if settings.max_events_per_second < 0:
        raise SettingsError(f"NOTIFIER_MAX_EVENTS_PER_SECOND={settings.max_events_per_second!r}: "
                            "must be 0 (no ceiling) or more")
    if not 0 < settings.port < 65536 and settings.port != 0:
        raise SettingsError(f"NOTIFIER_PORT={settings.port!r}: must be a TCP port (1-65535, or 0 for any free port)")
    if settings.stream_replicas is not None and not 1 <= settings.stream_replicas <= 5:
        raise SettingsError(f"NOTIFIER_STREAM_REPLICAS={settings.stream_replicas!r}: must be from 1 to 5")
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingsError("NOTIFIER_TLS_CERT and NOTIFIER_TLS_KEY must be set together")
    if settings.event_loop not in EVENT_LOOPS:
        raise SettingsError(f"NOTIFIER_EVENT_LOOP={settings.event_loop!r}: expected one of {', '.join(EVENT_LOOPS)}")
    if settings.jwt_secret and settings.jwt_public_key:
        raise SettingsError("set either NOTIFIER_JWT_SECRET or NOTIFIER_JWT_PUBLIC_KEY, not both")
    from notifier.origins import parse_allowed_origins  # here: notifier.origins imports this module

    parse_allowed_origins(settings.allowed_origins)
