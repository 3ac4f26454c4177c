"""JWT verification with pinned algorithms: HS256 with a shared secret, or RS256/ES256 with a public key."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import jwt
import msgspec
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from notifier.model.close_codes import ErrorCode
from notifier.model.errors import NotifierError
from notifier.model.events import UserId
from notifier.model.identity import NO_ROLES, Identity
from notifier.ops import metrics
from notifier.settings import Settings, SettingsError


class AuthenticationError(NotifierError):
    """A token was missing or not acceptable; `reason` is short enough for a WebSocket close frame."""

    code = ErrorCode.UNAUTHORIZED
    http_status = 401

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidAlgorithmError, "token algorithm not accepted"),
    (jwt.InvalidSignatureError, "bad token signature"),
    (jwt.InvalidAudienceError, "token audience not accepted"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
)


class Authenticator:
    """Verifies tokens; the accepted algorithm follows from the configured key, never from the token."""

    def __init__(self, secret: str | None = None, public_key_path: Path | None = None, leeway: float = 0,
                 audience: str | None = None):
        if public_key_path is not None:
            public_key = _load_public_key(Path(public_key_path))
            if isinstance(public_key, rsa.RSAPublicKey):
                self.algorithm = "RS256"
            elif isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
                # ES256 is P-256 only; another curve would make every token fail as "malformed".
                self.algorithm = "ES256"
            else:
                raise SettingsError(f"NOTIFIER_JWT_PUBLIC_KEY={public_key_path}: only RSA (RS256) and "
                                    "EC P-256 (ES256) public keys are supported")
            self._verify_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | str = public_key
            self._secret: str | None = None
        else:
            self.generated = secret is None
            self._secret = secret or secrets.token_urlsafe(32)
            self._verify_key = self._secret
            self.algorithm = "HS256"
        self.leeway = leeway
        # With an audience configured, tokens must name it; without one, an `aud` claim is not checked,
        # since identity providers add it to every token.
        self.audience = audience

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """The authenticator `notifier serve` uses: public key, else shared secret, else a generated secret."""
        if settings.jwt_public_key is not None:
            return cls(public_key_path=settings.jwt_public_key, audience=settings.jwt_audience)
        return cls(secret=settings.jwt_secret, audience=settings.jwt_audience)

    @property
    def secret(self) -> str | None:
        """The HS256 secret (for `notifier token` in development)."""
        return self._secret

    def verify(self, token: str | None) -> Identity:
        """The identity a token proves, or AuthenticationError saying why not (each failure counted)."""
        try:
            return self._verify(token)
        except AuthenticationError:
            metrics.AUTH_FAILURES.increment()
            raise

    def _verify(self, token: str | None) -> Identity:
        if not token:
            raise AuthenticationError("missing token")
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
                audience=self.audience,
                leeway=self.leeway,
            )
        except jwt.MissingRequiredClaimError as error:
            raise AuthenticationError(f"token lacks claim {error.claim!r}") from None
        except jwt.PyJWTError as error:
            # The most specific reason PyJWT gives; the first matching class wins.
            reason = next((text for kind, text in _REASONS if isinstance(error, kind)), "malformed token")
            raise AuthenticationError(reason) from None
        roles = claims.get("roles", [])
        try:
            # The envelope's `userId` rule: a user id private events can name, and never the
            # anonymous marker (it holds a space).
            subject = msgspec.convert(claims["sub"], UserId)
        except msgspec.ValidationError:
            raise AuthenticationError(
                "token claim 'sub' must be 1 to 256 printable ASCII characters without spaces") from None
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise AuthenticationError("token claim 'roles' must be a list of strings")
        return Identity(subject, frozenset(roles) if roles else NO_ROLES, float(claims["exp"]))

    def issue(self, subject: str, roles: list[str] | tuple[str, ...] = (), ttl_seconds: float = 3600) -> str:
        """Sign a token with the shared secret (development and tests)."""
        if self._secret is None:
            raise ValueError("tokens can only be issued with NOTIFIER_JWT_SECRET (HS256)")
        now = int(time.time())
        claims = {"sub": subject, "roles": list(roles), "iat": now, "exp": now + int(ttl_seconds)}
        return jwt.encode(claims, self._secret, algorithm="HS256")


def _load_public_key(path: Path) -> object:
    """The PEM public key at `path`; a SettingsError naming the variable when it cannot be used."""
    try:
        return load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise SettingsError(f"NOTIFIER_JWT_PUBLIC_KEY={path}: {error.strerror or error}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SettingsError(f"NOTIFIER_JWT_PUBLIC_KEY={path}: not a PEM public key") from None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header: None without one, "" when it is empty.

    An empty token is a failed authentication (`missing token`), never "no token": a client that
    sends the field means to authenticate, and must not be served as anonymous instead.
    """
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()
