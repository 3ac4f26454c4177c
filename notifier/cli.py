"""The `notifier` command: `serve` (the default), `publish`, `token`, `schema` and `demo`."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import gc
import importlib.metadata
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from notifier.app import GATEWAY as GATEWAY_KEY
from notifier.app import NATS_URL_FILE, Gateway, create_app, ssl_context
from notifier.catalog import CatalogConfigError, load_catalog
from notifier.catalog.export import json_schema_text, typescript
from notifier.demo import demo_command
from notifier.jetstream.publisher import Publisher
from notifier.jetstream.streams import StreamConfigError
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import InvalidEvent, decode_envelope
from notifier.model.permissions import DEFAULT_PERMISSIONS, Permissions, PermissionsError, load_permissions
from notifier.ops.log_format import LOG_FORMATS, configure_logging
from notifier.ops.tasks import cancel_and_wait
from notifier.settings import Settings, SettingsError, variables
from notifier.transport.access_log import RedactingAccessLogger
from notifier.transport.auth import Authenticator
from notifier.worker import WorkerContext
from notifier.workers import supervise

log = logging.getLogger(__name__)

DEV_SECRET_FILE = "jwt-dev-secret"
LOCK_FILE = "notifier.lock"
DEV_TOKEN_HOURS = 12
# A thousand clients reconnecting at once (a deploy, a network blip) overflow aiohttp's default 128.
LISTEN_BACKLOG = 4096


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(settings: Settings) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    authenticator = Authenticator.from_settings(settings)
    generated = settings.jwt_public_key is None and settings.jwt_secret is None
    if generated and not _is_loopback(settings.host):
        raise SettingsError(
            f"NOTIFIER_HOST={settings.host!r} but no NOTIFIER_JWT_SECRET or NOTIFIER_JWT_PUBLIC_KEY is set: "
            "a generated development secret only serves on loopback"
        )
    data_dir = Path(settings.data_dir)
    worker = WorkerContext.from_environment()
    if worker is not None:  # the parent holds the lock, runs nats-server and passed the secret
        await _serve_locked(settings, authenticator, False, data_dir, worker)
        return
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the loop serves anything
    # Before anything is started or written: a second gateway on this directory would start a second
    # nats-server on the same store, and on exit delete the first one's nats-url and jwt-dev-secret.
    lock = _lock_data_dir(data_dir)
    try:
        if settings.worker_count > 1:
            await supervise(settings, authenticator, generated, data_dir)
        else:
            await _serve_locked(settings, authenticator, generated, data_dir)
    finally:
        os.close(lock)  # releases the flock; the file stays, so no one can lock a deleted inode


def _lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive flock on `<data dir>/notifier.lock` (holder's pid inside); SettingsError if taken."""
    path = data_dir / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip()
        os.close(descriptor)
        raise SettingsError(
            f"another notifier{f' (pid {holder})' if holder else ''} is running on the data directory "
            f"{data_dir.resolve()} ({path} is locked): stop it, or set NOTIFIER_DATA_DIR to another folder"
        ) from None
    except BaseException:
        os.close(descriptor)
        raise
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return descriptor


async def _serve_locked(settings: Settings, authenticator: Authenticator, generated: bool, data_dir: Path,
                        worker: WorkerContext | None = None) -> None:
    secret_file = data_dir / DEV_SECRET_FILE
    if generated:
        write_dev_secret(secret_file, authenticator)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    app = create_app(settings, authenticator)
    if worker is not None:
        worker.install(app)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=RedactingAccessLogger)
    try:
        await runner.setup()
        context = ssl_context(settings)
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context, backlog=LISTEN_BACKLOG,
                           reuse_port=worker is not None)
        if worker is None or not worker.restarted:
            await site.start()
        gateway = app[GATEWAY_KEY]
        if worker is not None:
            await worker.start(runner, stop)  # the parent prints what follows, once for all workers
        else:
            print(f"notifier waiting for NATS at {', '.join(gateway.nats_servers)}", flush=True)
        stopping = asyncio.create_task(stop.wait())
        following = asyncio.create_task(gateway.following.wait())
        await asyncio.wait([stopping, following], return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(following)
        # Modules, types and the wiring made so far live as long as the process: taking them out
        # of the collector's view halves what a full collection walks, and a full collection
        # stops delivery to every client while it runs (at 1,000 connections 75 ms before, 36 after).
        gc.freeze()
        if not stop.is_set() and worker is not None and worker.restarted:
            await site.start()
        if not stop.is_set() and worker is None:
            port = runner.addresses[0][1] if runner.addresses else settings.port  # the bound port when 0 was asked
            print_banner(settings, port, context is not None, gateway.nats_servers, data_dir,
                         authenticator if generated else None)
        await stopping
        await _announce_shutdown(gateway, settings.shutdown_delay, loop)
    finally:
        await runner.cleanup()
        if generated:
            secret_file.unlink(missing_ok=True)


async def _announce_shutdown(gateway: Gateway, delay: float, loop: asyncio.AbstractEventLoop) -> None:
    """Answer /readyz 503 `shutting down` for `delay` seconds, connections still served; a second signal cuts it short.

    A load balancer polling /readyz takes the replica out meanwhile, so clients closed next
    (1001) reconnect to another replica rather than to this one.
    """
    gateway.shutting_down = True
    if delay <= 0:
        return
    log.info("shutting down: /readyz answers 503 for %.1f s before connections are closed", delay)
    again = asyncio.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, again.set)
    try:
        async with asyncio.timeout(delay):
            await again.wait()
    except TimeoutError:
        pass


def _permissions_line(settings: Settings, permissions: Permissions) -> str:
    """Where the channel permissions came from, and whether clients without a token are let in."""
    source = (f"built-in (no {settings.permissions_path}): any token reads every channel"
              if permissions is DEFAULT_PERMISSIONS else permissions.source)
    return source + ("; anonymous access on" if settings.anonymous_access else "")


def write_dev_secret(secret_file: Path, authenticator: Authenticator) -> None:
    """Keep the generated secret where `notifier token` finds it, readable by this user only."""
    secret_file.touch(mode=0o600)
    secret_file.write_text(authenticator.secret or "")


def print_banner(settings: Settings, port: int, tls: bool, nats_servers: list[str], data_dir: Path,
                 generated: Authenticator | None) -> None:
    """What `serve` prints once it follows the streams: the URLs, the data dir, a dev token with a generated secret."""
    _print_urls(settings.host, port, tls, nats_servers)
    print(f"  data dir   {data_dir.resolve()}", flush=True)
    permissions = load_permissions(settings.permissions_path, required=settings.permissions_file is not None)
    print(f"  permissions {_permissions_line(settings, permissions)}", flush=True)
    if generated is not None:
        token = generated.issue("dev", ["admin", "publisher"], DEV_TOKEN_HOURS * 3600)
        print(f"  dev token  {token}", flush=True)
        print(f"             (sub=dev, roles=admin,publisher, valid {DEV_TOKEN_HOURS} h; "
              "secret generated for this run)", flush=True)


def _print_urls(host: str, port: int, tls: bool, nats_servers: list[str]) -> None:
    http, ws = ("https", "wss") if tls else ("http", "ws")
    base = f"{host}:{port}"
    print(f"notifier serving on {http}://{base}", flush=True)
    print(f"  WebSocket  {ws}://{base}/ws", flush=True)
    print(f"  SSE        {http}://{base}/sse?channels=...", flush=True)
    print(f"  publish    {http}://{base}/api/publish", flush=True)
    print(f"  history    {http}://{base}/api/history?channels=...", flush=True)
    print(f"  health     {http}://{base}/healthz  {http}://{base}/readyz  {http}://{base}/metrics", flush=True)
    print(f"  NATS       {', '.join(nats_servers)}", flush=True)


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
    document = {"type": arguments.type, "source": arguments.source, "priority": arguments.priority}
    try:
        document["payload"] = json.loads(arguments.payload)
    except json.JSONDecodeError as error:
        print(f"error: --payload is not JSON: {error}", file=sys.stderr)
        return 2
    if arguments.user:
        document["userId"] = arguments.user
    if arguments.key:
        document["key"] = arguments.key
    if arguments.id:
        document["id"] = arguments.id
    try:
        catalog = load_catalog(settings.streams_dir)
        envelope = catalog.checked(decode_envelope(json.dumps(document))).completed(arguments.source)
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
    except PublishUnconfirmed as error:
        print(f"error: NATS at {servers} did not confirm event {error.event_id} ({error.reason}); it may still be "
              f"stored: retry with --id {error.event_id}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"error: NATS at {servers} did not store event {envelope.id} within 10 s; it may still be stored: "
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
                                    arguments.count, arguments.user))


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
