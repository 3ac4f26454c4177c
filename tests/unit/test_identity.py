"""Who a connection is: being anonymous is a flag of the identity, never read from its user id."""

from __future__ import annotations

from notifier.model.identity import ANONYMOUS_USER_ID, Identity, anonymous_identity
from notifier.model.permissions import EVERY_CHANNEL


def test_a_client_without_a_token_is_anonymous():
    """The identity of a client without a token says it is anonymous."""
    assert anonymous_identity(EVERY_CHANNEL).anonymous


def test_an_identity_carrying_the_anonymous_user_id_is_not_anonymous():
    """An identity made with the anonymous marker as its user id (as a token could) is not anonymous."""
    assert not Identity(ANONYMOUS_USER_ID).anonymous
