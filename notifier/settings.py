"""Gateway settings, read once from `NOTIFIER_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields, replace
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
MIN_SECRET_BYTES = 32


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
    max_connections_per_user: int = 5
    connection_count_ttl: float = 30.0
    # Browser origins besides the gateway's own that may open a WebSocket and use CORS (comma-separated, `*`).
    allowed_origins: str | None = None
    # Gateway processes sharing the port (SO_REUSEPORT) and one NATS: a whole number, or `auto` (one per CPU).
    workers: str = "1"
    # Set by `workers` for each of its processes: listen with SO_REUSEPORT on the port the parent reserved.
    reuse_port: int = 0

    @property
    def worker_count(self) -> int:
        """How many gateway processes `serve` runs (`auto`: one per CPU the process may use)."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        return int(self.workers)

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
                "http_idle_timeout", "connection_count_ttl")
    for name in positive:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"NOTIFIER_{name.upper()}={getattr(settings, name)!r}: must be greater than 0")
    for name in ("recent_events", "recent_events_bytes"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"NOTIFIER_{name.upper()}={getattr(settings, name)!r}: must be 0 (keep none) or more")
    if settings.max_connections_per_user < 0:
        raise SettingsError(f"NOTIFIER_MAX_CONNECTIONS_PER_USER={settings.max_connections_per_user!r}: "
                            "must be 0 (no limit) or more")
    if settings.connections_per_ip_per_minute < 0:
        raise SettingsError(f"NOTIFIER_CONNECTIONS_PER_IP_PER_MINUTE={settings.connections_per_ip_per_minute!r}: "
                            "must be 0 (no limit) or more")
    if settings.workers != "auto" and not (settings.workers.isdigit() and int(settings.workers) >= 1):
        raise SettingsError(f"NOTIFIER_WORKERS={settings.workers!r}: expected a whole number of at least 1, or auto")
    if settings.reuse_port not in (0, 1):
        raise SettingsError(f"NOTIFIER_REUSE_PORT={settings.reuse_port!r}: expected 0 or 1")
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
    if settings.jwt_secret and len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
        # RFC 7518 3.2: an HS256 key must be at least as long as the hash (32 bytes); a short one
        # can be brute-forced offline from any token a client holds.
        raise SettingsError(f"NOTIFIER_JWT_SECRET is {len(settings.jwt_secret.encode())} bytes: HS256 needs at "
                            f"least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)")
    from notifier.transport.origins import parse_allowed_origins  # here: notifier.transport.origins imports this module

    parse_allowed_origins(settings.allowed_origins)


# What each setting means, shown by `notifier serve --help` next to its variable and default
# (docs/operations.md section 2 says more). A field missing here is still listed, without text.
SETTING_HELP: dict[str, str] = {
    "nats_url": "comma-separated NATS server URLs; unset: start an embedded nats-server",
    "data_dir": "embedded NATS store, nats-url, jwt-dev-secret and the instance lock",
    "host": "listen address (0.0.0.0 for all IPv4 interfaces)",
    "port": "listen port, 0 = any free port (PORT when unset)",
    "jwt_secret": f"HS256 shared secret, at least {MIN_SECRET_BYTES} bytes",
    "jwt_public_key": "path to a PEM public key (RSA: RS256, EC P-256: ES256)",
    "jwt_audience": "required `aud` claim of tokens",
    "tls_cert": "PEM certificate chain path (HTTPS and WSS; with NOTIFIER_TLS_KEY)",
    "tls_key": "PEM private key path (with NOTIFIER_TLS_CERT)",
    "ping_interval": "seconds between WebSocket pings",
    "pong_timeout": "a WebSocket silent for ping interval + this is closed (4001)",
    "sse_ping_interval": "seconds between SSE `: ping` comments",
    "sse_retry_ms": "SSE `retry:` value (browser reconnect delay, ms)",
    "auth_timeout": "seconds a WebSocket has to send its auth message",
    "outbox_bytes": "per-connection outbox bound; overflow = slow client",
    "max_events_per_second": "per-connection ceiling for non-p0 live events, 0 = none",
    "workers": "gateway processes on one port (SO_REUSEPORT) following one NATS; auto = one per CPU",
    "reuse_port": "1: listen with SO_REUSEPORT (set by NOTIFIER_WORKERS for its processes)",
    "streams_dir": "folder of stream definitions (*.toml)",
    "stream_replicas": "overrides every stream's replicas (1-5)",
    "recent_events": "newest events kept in memory per stream for resumes, 0 = none",
    "recent_events_bytes": "bound of that memory per stream, 0 = none",
    "event_loop": f"event loop: {' or '.join(EVENT_LOOPS)}",
    "max_channels": "channels per connection, SSE stream or history request",
    "max_client_message_bytes": "largest WebSocket message a client may send (1009 above)",
    "client_messages_per_second": "inbound WebSocket messages per second per connection",
    "client_messages_burst": "burst above that rate; this many dropped in a row closes 4029",
    "http_idle_timeout": "seconds to complete a request or stay idle between requests",
    "connections_per_ip_per_minute": "new WebSocket/SSE connections per client address, 0 = off",
    "max_connections_per_user": "connections per user across all replicas (NATS KV), admin exempt, 0 = none",
    "connection_count_ttl": "seconds a dead replica's connection counts outlive it",
    "allowed_origins": "browser origins besides the gateway's own (comma-separated, `*`)",
}

# Variables read outside `Settings` (by the command line, before the settings): name, default, meaning.
PROCESS_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("PORT", "unset", "listen port when NOTIFIER_PORT is unset (platforms that run the Procfile)"),
    ("NOTIFIER_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ("NOTIFIER_LOG_FORMAT", "text", "text, or json: one JSON object per line"),
)


def variables() -> list[tuple[str, str, str]]:
    """Every environment variable the gateway reads: (name, default, meaning), settings first."""
    rows = []
    for settings_field in fields(Settings):
        if settings_field.default_factory is not MISSING:
            default: object = settings_field.default_factory()
        else:
            default = settings_field.default
        rows.append(("NOTIFIER_" + settings_field.name.upper(), "unset" if default is None else str(default),
                     SETTING_HELP.get(settings_field.name, "")))
    return rows + list(PROCESS_VARIABLES)
