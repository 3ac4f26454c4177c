"""Gateway settings, read once from `NOTIFIER_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from notifier.model.origins import parse_allowed_origins
from notifier.model.permissions import FILE_NAME as PERMISSIONS_FILE_NAME

PACKAGE_ROOT = Path(__file__).resolve().parent


def checkout_folder(name: str) -> Path:
    """A repository folder (`streams_config`, `clients`): beside the package (editable installs), else in the working directory.

    A non-editable install (the Docker image) runs from a folder holding copies of them.
    """
    beside_package = PACKAGE_ROOT.parent / name
    if beside_package.is_dir():
        return beside_package
    return Path.cwd() / name


def default_streams_dir() -> Path:
    """The `streams_config/` folder beside the package (editable installs) or in the working directory."""
    return checkout_folder("streams_config")


EVENT_LOOPS = ("uvloop", "asyncio")
MAX_WORKERS = 64
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
    # On SIGTERM, /readyz answers 503 this long before connections are closed, so a load balancer
    # stops sending new clients here first (docs/operations.md section 9).
    shutdown_delay: float = 0.0
    # Channel permissions (model/permissions.py); unset: `permissions.toml` in the streams folder.
    permissions_file: Path | None = None
    # Clients without a token may connect to /ws, /sse and read /api/history, as role `anonymous`.
    anonymous_access: bool = False
    # Gateway processes serving the one port (docs/operations.md section 13): a number, or `auto`.
    workers: str = "1"
    # Consecutive events of one channel in a loop step go to plain sessions as one shared frame
    # (`frames.EventRun`); a switch to turn that off, and for before/after benchmarks.
    event_runs: bool = True

    @property
    def worker_count(self) -> int:
        """How many worker processes `workers` asks for (`auto`: the CPUs this process may run on)."""
        if self.workers == "auto":
            try:
                return min(MAX_WORKERS, len(os.sched_getaffinity(0)))
            except AttributeError:  # not Linux
                return min(MAX_WORKERS, os.cpu_count() or 1)
        return int(self.workers)

    @property
    def nats_servers(self) -> list[str]:
        """The configured NATS servers as a list (empty means: start an embedded one)."""
        if not self.nats_url:
            return []
        return [server.strip() for server in self.nats_url.split(",") if server.strip()]

    @property
    def permissions_path(self) -> Path:
        """The permissions file: NOTIFIER_PERMISSIONS_FILE, else `permissions.toml` in the streams folder."""
        if self.permissions_file is not None:
            return Path(self.permissions_file)
        return Path(self.streams_dir) / PERMISSIONS_FILE_NAME

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (tests and the CLI use this)."""
        return replace(self, **changes)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `NOTIFIER_*` variables; a bad value raises SettingsError naming the variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}  # each field's own type, converted by _convert
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


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(variable: str, raw: str, annotation: object) -> object:
    kind = str(annotation)
    if kind.startswith("bool"):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{variable}={raw!r}: expected one of {', '.join(_TRUE + _FALSE)}")
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
    if settings.shutdown_delay < 0:
        raise SettingsError(f"NOTIFIER_SHUTDOWN_DELAY={settings.shutdown_delay!r}: must be 0 or more seconds")
    for name in ("recent_events", "recent_events_bytes"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"NOTIFIER_{name.upper()}={getattr(settings, name)!r}: must be 0 (keep none) or more")
    if settings.max_connections_per_user < 0:
        raise SettingsError(f"NOTIFIER_MAX_CONNECTIONS_PER_USER={settings.max_connections_per_user!r}: "
                            "must be 0 (no limit) or more")
    if settings.connections_per_ip_per_minute < 0:
        raise SettingsError(f"NOTIFIER_CONNECTIONS_PER_IP_PER_MINUTE={settings.connections_per_ip_per_minute!r}: "
                            "must be 0 (no limit) or more")
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
    if settings.workers != "auto" and not (settings.workers.isdigit() and 1 <= int(settings.workers) <= MAX_WORKERS):
        raise SettingsError(f"NOTIFIER_WORKERS={settings.workers!r}: expected auto (one per CPU) or a whole number "
                            f"from 1 to {MAX_WORKERS}")
    try:
        parse_allowed_origins(settings.allowed_origins)
    except ValueError as error:
        raise SettingsError(str(error)) from None


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
    "streams_dir": "folder of stream definitions (*.toml) and the event catalog rules (catalog.toml)",
    "stream_replicas": "overrides every stream's replicas (1-5)",
    "recent_events": "newest events kept in memory per stream for resumes, 0 = none",
    "recent_events_bytes": "bound of that memory per stream, 0 = none",
    "event_loop": f"event loop: {' or '.join(EVENT_LOOPS)}",
    "max_channels": "channels per connection, SSE stream or history request",
    "max_client_message_bytes": "largest WebSocket message a client may send (1009 above)",
    "client_messages_per_second": "inbound WebSocket messages per second per connection",
    "client_messages_burst": "burst above that rate; this many dropped in a row closes 4029",
    "http_idle_timeout": "seconds to send a request's headers, then its body (408), or stay idle between requests",
    "connections_per_ip_per_minute": "new WebSocket/SSE connections per client address, 0 = off",
    "max_connections_per_user": "connections per user across all replicas (NATS KV), admin exempt, 0 = none",
    "connection_count_ttl": "seconds a dead replica's connection counts outlive it",
    "allowed_origins": "browser origins besides the gateway's own (comma-separated, `*`)",
    "shutdown_delay": "seconds /readyz answers 503 after SIGTERM before connections are closed",
    "permissions_file": "channel permissions (TOML); unset: permissions.toml in the streams folder",
    "anonymous_access": "clients without a token may read, as role `anonymous` (true/false)",
    "workers": f"gateway processes on the one port: 1 to {MAX_WORKERS}, or auto (one per CPU)",
    "event_runs": "offer a loop step's consecutive events of one channel as one shared frame (true/false)",
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
