"""The NATS side of the admin API: requests every replica answers, and the streams' state.

Each replica subscribes to two core NATS subjects outside every stream (nothing is stored):

    notifier_admin.connections   answer with this replica's connections
    notifier_admin.disconnect    close this user's connections here, answer how many

A request goes to every replica at once with a reply inbox, the asking replica included. NATS
does not say how many replicas listen, so answers are gathered until none has come for
`GATHER_QUIET_SECONDS` (at most `GATHER_LIMIT_SECONDS`); a replica answering later than that is
missing from the answer, though it still acts on a disconnect.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from notifier.jetstream.streams import StreamSet
from notifier.model.broker import AdminUnavailable
from notifier.model.cursor import epoch_of

log = logging.getLogger(__name__)

CONNECTIONS_SUBJECT = "notifier_admin.connections"
DISCONNECT_SUBJECT = "notifier_admin.disconnect"
GATHER_QUIET_SECONDS = 0.25
GATHER_LIMIT_SECONDS = 2.0


class AdminControl:
    """Answers admin requests for this replica and sends them to all replicas (`ReplicaAdmin`)."""

    def __init__(self, client: Client, streams: StreamSet, replica: str,
                 list_connections: Callable[[], dict[str, Any]], disconnect_user: Callable[[str], int]):
        self.client = client
        self.streams = streams
        self.replica = replica
        self._list_connections = list_connections
        self._disconnect_user = disconnect_user
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        """Subscribe to the admin subjects (nats-py subscribes again after each reconnect)."""
        self._subscriptions = [
            await self.client.subscribe(CONNECTIONS_SUBJECT, cb=self._answer_connections),
            await self.client.subscribe(DISCONNECT_SUBJECT, cb=self._answer_disconnect),
        ]

    async def stop(self) -> None:
        """Stop answering (the gateway is stopping)."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception as error:  # the connection is closing anyway
                log.debug("admin subscription not removed: %s", error)

    # -- answering, on every replica --

    async def _answer_connections(self, message: Msg) -> None:
        await self._respond(message, {"replica": self.replica, **self._list_connections()})

    async def _answer_disconnect(self, message: Msg) -> None:
        try:
            user = json.loads(message.data)["user"]
            if not isinstance(user, str):
                raise TypeError("user must be a string")
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring malformed admin disconnect request: %s", error)
            return
        await self._respond(message, {"replica": self.replica, "closed": self._disconnect_user(user)})

    async def _respond(self, message: Msg, answer: dict[str, Any]) -> None:
        if message.reply:
            await message.respond(json.dumps(answer).encode())

    # -- asking, from the replica that serves the admin request --

    async def connections_everywhere(self) -> list[dict[str, Any]]:
        """Every replica's answer: `{"replica": ..., "total": n, "connections": [...]}`."""
        return await self._gather(CONNECTIONS_SUBJECT, b"{}")

    async def disconnect_everywhere(self, user_id: str) -> list[dict[str, Any]]:
        """Close the user's connections on every replica; each replica's `{"replica": ..., "closed": n}`."""
        return await self._gather(DISCONNECT_SUBJECT, json.dumps({"user": user_id}).encode())

    async def _gather(self, subject: str, payload: bytes) -> list[dict[str, Any]]:
        if not self.client.is_connected:
            raise AdminUnavailable("nats disconnected")
        answers: asyncio.Queue[bytes] = asyncio.Queue()

        async def collect(message: Msg) -> None:
            answers.put_nowait(message.data)

        inbox = self.client.new_inbox()
        subscription = await self.client.subscribe(inbox, cb=collect)
        gathered: list[dict[str, Any]] = []
        try:
            await self.client.publish(subject, payload, reply=inbox)
            await self.client.flush()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + GATHER_LIMIT_SECONDS
            # The first answer may take up to the limit; after it, a quiet spell ends the gathering.
            wait = GATHER_LIMIT_SECONDS
            while (left := deadline - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(answers.get(), min(wait, left))
                except TimeoutError:
                    break
                try:
                    gathered.append(json.loads(data))
                except ValueError:
                    log.warning("ignoring a malformed admin answer on %s", subject)
                wait = GATHER_QUIET_SECONDS
        finally:
            await subscription.unsubscribe()
        return sorted(gathered, key=lambda answer: str(answer.get("replica")))

    # -- the streams --

    async def stream_states(self) -> list[dict[str, Any]]:
        """Each configured stream's state as JetStream reports it now; `error` for one it cannot report."""
        if not self.client.is_connected:
            raise AdminUnavailable("nats disconnected")
        jetstream = self.client.jetstream()
        states = []
        for definition in self.streams:
            try:
                info = await jetstream.stream_info(definition.name)
            except Exception as error:  # no leader, deleted: say so for this stream, report the others
                states.append({"name": definition.name, "cursor_id": definition.cursor_id,
                               "error": str(error) or type(error).__name__})
                continue
            cluster = info.cluster
            leader = cluster.leader if cluster is not None else None
            followers = (cluster.replicas or []) if cluster is not None else []
            states.append({
                "name": definition.name,
                "cursor_id": definition.cursor_id,
                "messages": info.state.messages,
                "bytes": info.state.bytes,
                "first_sequence": info.state.first_seq,
                "last_sequence": info.state.last_seq,
                "epoch": epoch_of(info.created),
                "replicas": info.config.num_replicas,
                "leader": leader,
                "followers": [{"name": peer.name, "current": bool(peer.current), "offline": bool(peer.offline),
                               "lag": peer.lag or 0} for peer in followers],
                "consumers": info.state.consumer_count,
            })
        return states
