"""Who a connection belongs to, and which events that person may see."""

from __future__ import annotations

from dataclasses import dataclass, replace

from notifier.model.events import Envelope

ADMIN_ROLE = "admin"
PUBLISHER_ROLE = "publisher"
# Shared by every identity without roles (an empty frozenset is a new object each time).
NO_ROLES: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Identity:
    """The verified claims of a token: user id, roles and expiry (Unix seconds).

    `session_id` narrows what the viewer sees to one trading session (the `session` option):
    set on the copy a filtered subscription reads with, never by a token.
    """

    user_id: str
    roles: frozenset[str] = NO_ROLES
    expires_at: float | None = None
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admins see every user's private events."""
        return ADMIN_ROLE in self.roles

    def can_see(self, envelope: Envelope) -> bool:
        """Public events reach everyone, private ones only their user and admins; narrowed, only its session's."""
        return ((envelope.user_id is None or envelope.user_id == self.user_id or self.is_admin)
                and (self.session_id is None or envelope.session_id == self.session_id))

    def narrowed_to(self, session_id: str | None) -> "Identity":
        """This viewer, seeing only events of one trading session (itself when `session_id` is None)."""
        return self if session_id is None else replace(self, session_id=session_id)
