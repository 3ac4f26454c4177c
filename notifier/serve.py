"""`notifier serve`: one gateway (or the parent of N workers) on a locked data directory until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import tempfile
from pathlib import Path

from aiohttp import web

from notifier.app import GATEWAY as GATEWAY_KEY
from notifier.app import Gateway, create_app, ssl_context
from notifier.jetstream.connection import named_servers
from notifier.model.origins import is_loopback_name
from notifier.model.permissions import DEFAULT_PERMISSIONS, Permissions, load_permissions
from notifier.ops.metrics import delivery_compiled
from notifier.ops.tasks import cancel_and_wait
from notifier.settings import Settings, SettingsError
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


async def serve(settings: Settings) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    authenticator = Authenticator.from_settings(settings)
    generated = settings.jwt_public_key is None and settings.jwt_secret is None
    if generated and not is_loopback_name(settings.host):
        raise SettingsError(
            f"NOTIFIER_HOST={settings.host!r} but no NOTIFIER_JWT_SECRET or NOTIFIER_JWT_PUBLIC_KEY is set: "
            "a generated development secret only serves on loopback"
        )
    data_dir = Path(settings.data_dir)
    worker = WorkerContext.from_environment()
    if worker is not None:  # the parent holds the lock, runs nats-server and passed the secret
        authenticator.generated = worker.generated_secret  # development mode: the console token, loopback Host only
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
    descriptor, holder = _take_lock(path, 0o644)
    if descriptor is None:
        raise SettingsError(
            f"another notifier{f' (pid {holder})' if holder else ''} is running on the data directory "
            f"{data_dir.resolve()} ({path} is locked): stop it, or set NOTIFIER_DATA_DIR to another folder"
        )
    return descriptor


def lock_port(port: int) -> int | None:
    """Hold `<temp dir>/notifier-<uid>-port-<port>.lock` for a parent of workers; SettingsError if another holds it.

    Workers listen with SO_REUSEPORT, which lets any process of the same user listen on the port
    too and take a share of new connections: a second gateway with workers started by mistake on
    the same port (with another data directory) would split the clients silently. None (no
    guard) when the file belongs to another user, who cannot share the port anyway.
    """
    path = Path(tempfile.gettempdir()) / f"notifier-{os.getuid()}-port-{port}.lock"
    try:
        descriptor, holder = _take_lock(path, 0o600)
    except PermissionError:
        log.warning("cannot take %s (another user's file): a second gateway on port %d would not be refused",
                    path, port)
        return None
    if descriptor is None:
        raise SettingsError(
            f"another notifier with workers{f' (pid {holder})' if holder else ''} serves port {port} ({path} is "
            "locked): two would share its connections (SO_REUSEPORT); stop it, or set NOTIFIER_PORT to another port"
        )
    return descriptor


def _take_lock(path: Path, mode: int) -> tuple[int | None, str]:
    """An exclusive flock on `path` with this pid written in: (descriptor, ""), or (None, the holder's pid) if taken."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, mode)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip()
        os.close(descriptor)
        return None, holder
    except BaseException:
        os.close(descriptor)
        raise
    os.ftruncate(descriptor, 0)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    return descriptor, ""


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
            print(f"notifier waiting for NATS at {named_servers(gateway.nats_servers)}", flush=True)
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
    build = "compiled by mypyc" if delivery_compiled() else "pure Python (NOTIFIER_COMPILE=1 at build compiles it)"
    print(f"  delivery   {build}", flush=True)
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
    hidden = " (credentials not shown)" if named_servers(nats_servers) != ", ".join(nats_servers) else ""
    print(f"  NATS       {named_servers(nats_servers)}{hidden}", flush=True)


