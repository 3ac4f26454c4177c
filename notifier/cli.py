"""The `notifier` command: `serve` (the default), `publish` and `token`."""

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
from pathlib import Path
from typing import Callable

from aiohttp import web

from notifier.transport.access_log import RedactingAccessLogger
from notifier.app import GATEWAY as GATEWAY_KEY, NATS_URL_FILE, create_app, ssl_context
from notifier.transport.auth import Authenticator
from notifier.model.broker import PublishUnconfirmed
from notifier.model.events import InvalidEvent, decode_envelope
from notifier.ops.log_format import LOG_FORMATS, configure_logging
from notifier.jetstream.publisher import Publisher
from notifier.settings import Settings, SettingsError, variables
from notifier.jetstream.streams import StreamConfigError
from notifier.ops.tasks import cancel_and_wait

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
    data_dir.mkdir(parents=True, exist_ok=True)
    # Before anything is started or written: a second gateway on this directory would start a second
    # nats-server on the same store, and on exit delete the first one's nats-url and jwt-dev-secret.
    lock = _lock_data_dir(data_dir)
    try:
        if settings.worker_count > 1:
            from notifier.workers import supervise

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


async def _serve_locked(settings: Settings, authenticator: Authenticator, generated: bool, data_dir: Path) -> None:
    secret_file = data_dir / DEV_SECRET_FILE
    if generated:
        secret_file.touch(mode=0o600)
        secret_file.write_text(authenticator.secret or "")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    app = create_app(settings, authenticator)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=RedactingAccessLogger)
    try:
        await runner.setup()
        context = ssl_context(settings)
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context, backlog=LISTEN_BACKLOG,
                           reuse_port=bool(settings.reuse_port) or None)
        await site.start()
        gateway = app[GATEWAY_KEY]
        print(f"notifier waiting for NATS at {', '.join(gateway.nats_servers)}", flush=True)
        stopping = asyncio.create_task(stop.wait())
        following = asyncio.create_task(gateway.following.wait())
        await asyncio.wait([stopping, following], return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(following)
        # Modules, types and the wiring made so far live as long as the process: taking them out
        # of the collector's view halves what a full collection walks, and a full collection
        # stops delivery to every client while it runs (at 1,000 connections 75 ms before, 36 after).
        gc.freeze()
        if not stop.is_set():
            port = site._server.sockets[0].getsockname()[1] if site._server else settings.port
            _print_urls(settings.host, port, context is not None, gateway.nats_servers)
            print(f"  data dir   {data_dir.resolve()}", flush=True)
            if generated:
                token = authenticator.issue("dev", ["admin", "publisher"], DEV_TOKEN_HOURS * 3600)
                print(f"  dev token  {token}", flush=True)
                print(f"             (sub=dev, roles=admin,publisher, valid {DEV_TOKEN_HOURS} h; "
                      "secret generated for this run)", flush=True)
        await stopping
    finally:
        await runner.cleanup()
        if generated:
            secret_file.unlink(missing_ok=True)


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


async def publish(settings: Settings, arguments: argparse.Namespace) -> int:
    """Publish one event through NATS and print where it was stored."""
    servers = settings.nats_url
    url_file = Path(settings.data_dir) / NATS_URL_FILE
    if not servers and url_file.exists():
        servers = url_file.read_text().strip()
    if not servers:
        print(f"error: no NATS URL: NOTIFIER_NATS_URL is not set and no running gateway was found ({url_file.resolve()} "
              "does not exist); set NOTIFIER_NATS_URL, or NOTIFIER_DATA_DIR to the running gateway's data directory "
              "(`python -m notifier` prints it as `data dir`)", file=sys.stderr)
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
        envelope = decode_envelope(json.dumps(document)).completed(arguments.source)
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
    configure_logging(level, log_format)
    try:
        settings = Settings.from_environment()
        if arguments.command == "publish":
            return asyncio.run(publish(settings, arguments))
        if arguments.command == "token":
            return token(settings, arguments)
        with asyncio.Runner(loop_factory=event_loop_factory(settings.event_loop)) as runner:
            runner.run(serve(settings))
        return 0
    except (SettingsError, StreamConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as error:
        # Unreadable TLS files, a port already in use, a data dir that cannot be created.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
