"""Who a connection belongs to, and which events that person may see."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from notifier.model.events import Envelope
from notifier.model.permissions import ANONYMOUS, EVERY_CHANNEL, ChannelAccess

ADMIN_ROLE = "admin"
# Shared by every identity without roles (an empty frozenset is a new object each time).
NO_ROLES: frozenset[str] = frozenset()
# The user id of clients without a token: it holds a space, which no envelope's `userId` nor a
# token's `sub` may (USER_PATTERN), so no private event is ever theirs. Whether a client is
# anonymous is the `anonymous` flag, never read from this id.
ANONYMOUS_USER_ID = "(no token)"


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified claims of a token: user id, roles and expiry (Unix seconds), and what its roles may see.

    `session_id` narrows what the viewer sees to one trading session (the `session` option):
    set on the copy a filtered subscription reads with, never by a token.
    """

    user_id: str
    roles: frozenset[str] = NO_ROLES
    expires_at: float | None = None
    session_id: str | None = None
    # A client without a token (NOTIFIER_ANONYMOUS_ACCESS): set by `anonymous_identity` alone.
    anonymous: bool = False
    # The channel permissions of these roles (model/permissions.py); every channel unless applied.
    access: ChannelAccess = field(default=EVERY_CHANNEL, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        """Admins see every user's private events."""
        return ADMIN_ROLE in self.roles

    def can_see(self, envelope: Envelope) -> bool:
        """Public events reach everyone, private ones only their user and admins; only types the roles may see;
        narrowed, only its session's."""
        return ((envelope.user_id is None or envelope.user_id == self.user_id or self.is_admin)
                and self.access.allows(envelope.type)
                and (self.session_id is None or envelope.session_id == self.session_id))

    def narrowed_to(self, session_id: str | None) -> Identity:
        """This viewer, seeing only events of one trading session (itself when `session_id` is None)."""
        return self if session_id is None else replace(self, session_id=session_id)


def anonymous_identity(access: ChannelAccess) -> Identity:
    """The identity of a client without a token: no user of its own, role `anonymous` only."""
    return Identity(ANONYMOUS_USER_ID, frozenset((ANONYMOUS,)), None, anonymous=True, access=access)
