"""The `notifier` command: `serve` (the default), `publish`, `token`, `schema` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from notifier.app import NATS_URL_FILE
from notifier.catalog import CatalogConfigError, load_catalog
from notifier.catalog.export import json_schema_text, typescript
from notifier.demo import demo_command
from notifier.jetstream.connection import named_servers
from notifier.jetstream.publisher import Publisher
from notifier.jetstream.streams import StreamConfigError
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import Envelope, InvalidEvent, validated
from notifier.model.permissions import PermissionsError
from notifier.ops.log_format import LOG_FORMATS, configure_logging
from notifier.serve import DEV_SECRET_FILE, serve
from notifier.settings import Settings, SettingsError, variables
from notifier.transport.auth import Authenticator
from notifier.worker import WorkerContext

log = logging.getLogger(__name__)

def _nats_url(settings: Settings) -> str | None:
    """NOTIFIER_NATS_URL, else the running gateway's `<data dir>/nats-url`; None (said on stderr) when neither."""
    servers = settings.nats_url
    url_file = Path(settings.data_dir) / NATS_URL_FILE
    if not servers and url_file.exists():
        servers = url_file.read_text().strip()
    if not servers:
        print(f"error: no NATS URL: NOTIFIER_NATS_URL is not set and no running gateway was found ({url_file.resolve()} "
              "does not exist); set NOTIFIER_NATS_URL, or NOTIFIER_DATA_DIR to the running gateway's data directory "
              "(`python -m notifier` prints it as `data dir`)", file=sys.stderr)
    return servers or None


async def publish(settings: Settings, arguments: argparse.Namespace) -> int:
    """Publish one event through NATS and print where it was stored."""
    servers = _nats_url(settings)
    if servers is None:
        return 2
    try:
        payload = json.loads(arguments.payload)
    except json.JSONDecodeError as error:
        print(f"error: --payload is not JSON: {error}", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(settings.streams_dir)
        envelope = Envelope(type=arguments.type, source=arguments.source, priority=arguments.priority,
                            payload=payload, user_id=arguments.user or None, key=arguments.key or None,
                            id=arguments.id or None)
        envelope = catalog.checked(validated(envelope.completed(arguments.source)))
    except InvalidEvent as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        async with asyncio.timeout(10):
            publisher = await Publisher.connect(servers, source=arguments.source, streams_dir=settings.streams_dir)
            try:
                result = await publisher.publish(envelope)
            finally:
                await publisher.close()
    except InvalidEvent as error:  # too large for NATS's max_payload: checked once connected, nothing sent
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PublishUnconfirmed as error:
        print(f"error: NATS at {named_servers(servers)} did not confirm event {error.event_id} ({error.reason}); it may still be "
              f"stored: retry with --id {error.event_id}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"error: NATS at {named_servers(servers)} did not store event {envelope.id} within 10 s; it may still be stored: "
              f"retry with --id {envelope.id}", file=sys.stderr)
        return 1
    print(json.dumps({"id": result.id, "stream": result.stream, "sequence": result.sequence,
                      "duplicate": result.duplicate}))
    return 0


def token(settings: Settings, arguments: argparse.Namespace) -> int:
    """Print a JWT signed with NOTIFIER_JWT_SECRET (or the running dev gateway's generated secret)."""
    secret = settings.jwt_secret
    secret_file = Path(settings.data_dir) / DEV_SECRET_FILE
    if not secret and secret_file.exists():
        secret = secret_file.read_text().strip()
    if not secret:
        print("error: no signing secret: NOTIFIER_JWT_SECRET is not set and no running dev gateway was found "
              f"({secret_file.resolve()} does not exist); set NOTIFIER_JWT_SECRET, or NOTIFIER_DATA_DIR to the running "
              "gateway's data directory (`python -m notifier` prints it as `data dir`)", file=sys.stderr)
        return 2
    print(Authenticator(secret=secret).issue(arguments.subject, arguments.role or [], arguments.ttl))
    return 0


def demo(settings: Settings, arguments: argparse.Namespace) -> int:
    """Publish simulated trading events until `--duration` or `--count` (or Ctrl-C)."""
    servers = _nats_url(settings)
    if servers is None:
        return 2
    if arguments.rate <= 0:
        print("error: --rate must be greater than 0", file=sys.stderr)
        return 2
    return asyncio.run(demo_command(servers, settings.streams_dir, arguments.rate, arguments.duration,
                                    arguments.count, arguments.user, arguments.seed))


def schema(settings: Settings, arguments: argparse.Namespace) -> int:
    """Print the event catalog as a JSON Schema or as TypeScript declarations."""
    catalog = load_catalog(settings.streams_dir)
    sys.stdout.write(json_schema_text(catalog) if arguments.format == "json-schema" else typescript(catalog))
    return 0


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop `serve` runs on: uvloop's (it writes to sockets in C) unless NOTIFIER_EVENT_LOOP=asyncio."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        raise SettingsError("NOTIFIER_EVENT_LOOP=uvloop: uvloop is not installed; install it or set asyncio") from None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifier", description="Real-time notification gateway.",
                                     epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"notifier {_version()}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gateway (the default)", description="Run the gateway until SIGTERM.",
                        epilog=_settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    publish_parser = commands.add_parser("publish", help="publish one event through NATS")
    publish_parser.add_argument("type", help="event type, e.g. order.filled")
    publish_parser.add_argument("--payload", default="{}", help="JSON object")
    publish_parser.add_argument("--user", help="make the event private to this user id")
    publish_parser.add_argument("--key", help="sub-channel key, e.g. BTC/USDT")
    publish_parser.add_argument("--priority", default="p2", choices=["p0", "p1", "p2", "p3"])
    publish_parser.add_argument("--source", default="cli", help="service name")
    publish_parser.add_argument("--id", help="the event's id (default: a new one); retry a failed publish with the "
                                             "id it printed and JetStream stores it once")
    demo_parser = commands.add_parser("demo", help="publish simulated trading events (orders, risk, signals, backtests)")
    demo_parser.add_argument("--rate", type=float, default=5.0, help="events per second (default 5)")
    demo_parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    demo_parser.add_argument("--count", type=int, help="stop after this many events")
    demo_parser.add_argument("--user", default="dev", help="user id of the private (execution, risk) events")
    demo_parser.add_argument("--seed", type=int, help="random seed: the same seed and rate give the same events")
    schema_parser = commands.add_parser("schema", help="print the event catalog for other languages")
    schema_parser.add_argument("--format", choices=["json-schema", "typescript"], default="json-schema",
                               help="a JSON Schema keyed by event type, or TypeScript declarations")
    token_parser = commands.add_parser("token", help="print a signed JWT for development and tests")
    token_parser.add_argument("subject", metavar="SUB", help="user id (the sub claim)")
    token_parser.add_argument("--role", action="append", help="a role; repeat for more")
    token_parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("notifier")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _settings_help() -> str:
    """Every environment variable with its default and meaning, from notifier/settings.py."""
    rows = variables()
    width = max(len(name) for name, _, _ in rows)
    lines = ["environment variables (an empty value counts as unset):"]
    for name, default, meaning in rows:
        lines.append(f"  {name:<{width}}  {meaning}" + (f" (default: {default})" if default != "unset" else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `notifier` console script and `python -m notifier`."""
    arguments = _parser().parse_args(argv)
    level = os.environ.get("NOTIFIER_LOG_LEVEL", "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        print(f"error: NOTIFIER_LOG_LEVEL={level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL", file=sys.stderr)
        return 2
    log_format = os.environ.get("NOTIFIER_LOG_FORMAT") or "text"
    if log_format not in LOG_FORMATS:
        print(f"error: NOTIFIER_LOG_FORMAT={log_format!r}: expected one of {', '.join(LOG_FORMATS)}", file=sys.stderr)
        return 2
    worker = WorkerContext.from_environment()
    configure_logging(level, log_format, worker.index if worker is not None else None)
    try:
        settings = Settings.from_environment()
        if arguments.command == "publish":
            return asyncio.run(publish(settings, arguments))
        if arguments.command == "token":
            return token(settings, arguments)
        if arguments.command == "schema":
            return schema(settings, arguments)
        if arguments.command == "demo":
            return demo(settings, arguments)
        with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
        return 0
    except (SettingsError, StreamConfigError, CatalogConfigError, PermissionsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as error:
        # Unreadable TLS files, a port already in use, a data dir that cannot be created.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
