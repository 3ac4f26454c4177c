"""Authentication as clients see it: WebSocket 1008 closes, token sources and refresh, HTTP 401/403/400, pinned algorithms."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from pathlib import Path

import jwt
import pytest
from conftest import SECRET
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifier.transport.auth import AuthenticationError, Authenticator

POLICY_VIOLATION = 1008


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(subject: str = "alice", roles: tuple[str, ...] = (), ttl: int = 3600) -> dict:
    now = int(time.time())
    return {"sub": subject, "roles": list(roles), "iat": now, "exp": now + ttl}


def unsigned_token(payload: dict) -> str:
    """A token with `alg: none` and an empty signature."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}."


def hs256_token(payload: dict, secret: bytes) -> str:
    """An HS256 token signed by hand (PyJWT refuses to use a PEM key as an HMAC secret)."""
    signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def closed_with_policy_violation(gateway, path: str, **kwargs) -> str:
    """Open `path`, expect the upgrade to succeed and the server to close with 1008; return the reason."""
    client = await gateway.websocket(path, token=None, **kwargs)
    code, reason = await client.closed()
    assert code == POLICY_VIOLATION, (code, reason)
    assert reason and len(reason.encode()) <= 123
    return reason


# -- WebSocket: failures close with 1008 after the upgrade --


async def test_websocket_without_token_closes_1008_on_first_non_auth_message(gateway):
    """A connection with no token whose first message is not an auth message is closed with 1008."""
    client = await gateway.websocket(token=None)
    await client.send({"action": "subscribe", "channels": ["order.event"]})
    code, reason = await client.closed()
    assert code == POLICY_VIOLATION, (code, reason)
    assert "auth" in reason


async def test_websocket_auth_message_with_empty_token_closes_1008(gateway):
    """A first auth message carrying an empty token is closed with 1008 `missing token`."""
    client = await gateway.websocket(token=None)
    await client.send({"action": "auth", "token": ""})
    code, reason = await client.closed()
    assert (code, reason) == (POLICY_VIOLATION, "missing token")


async def test_websocket_bad_signature_closes_1008(gateway):
    """A token signed with another secret is closed with 1008."""
    forged = jwt.encode(claims(), "some-other-secret-of-sufficient-length!", algorithm="HS256")
    reason = await closed_with_policy_violation(gateway, f"/ws?token={forged}")
    assert "signature" in reason


async def test_websocket_malformed_token_closes_1008(gateway):
    """A token that is not a JWT at all is closed with 1008."""
    await closed_with_policy_violation(gateway, "/ws?token=not.a.jwt")


async def test_websocket_expired_token_closes_1008(gateway):
    """An expired token is closed with 1008 and a reason saying so."""
    expired = gateway.token("alice", ttl=-60)
    reason = await closed_with_policy_violation(gateway, f"/ws?token={expired}")
    assert "expired" in reason


async def test_websocket_token_without_exp_closes_1008(gateway):
    """A correctly signed token without `exp` is closed with 1008."""
    token = jwt.encode({"sub": "alice", "roles": []}, SECRET, algorithm="HS256")
    await closed_with_policy_violation(gateway, f"/ws?token={token}")


async def test_websocket_alg_none_token_closes_1008(gateway):
    """A token with `alg: none` and no signature is closed with 1008."""
    await closed_with_policy_violation(gateway, f"/ws?token={unsigned_token(claims())}")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_websocket_other_hmac_algorithm_closes_1008(gateway):
    """A token signed with the right secret but HS512 is closed with 1008: the algorithm is pinned."""
    token = jwt.encode(claims(), SECRET, algorithm="HS512")
    await closed_with_policy_violation(gateway, f"/ws?token={token}")


async def test_websocket_rs256_token_on_hs256_gateway_closes_1008(gateway):
    """An RS256 token presented to an HS256 gateway is closed with 1008 (algorithm confusion)."""
    token = jwt.encode(claims(), rsa_key(), algorithm="RS256")
    await closed_with_policy_violation(gateway, f"/ws?token={token}")


async def test_websocket_bad_header_token_closes_1008(gateway):
    """A bad token in the `Authorization: Bearer` header is closed with 1008."""
    forged = jwt.encode(claims(), "some-other-secret-of-sufficient-length!", algorithm="HS256")
    await closed_with_policy_violation(gateway, "/ws", headers={"Authorization": f"Bearer {forged}"})


async def test_websocket_without_auth_message_closes_1008_after_auth_timeout(make_gateway):
    """A connection without a token that sends nothing is closed with 1008 once the auth timeout passes."""
    gateway = await make_gateway(auth_timeout=0.3)
    client = await gateway.websocket(token=None)
    code, reason = await client.closed(timeout=5)
    assert code == POLICY_VIOLATION, (code, reason)
    assert "timeout" in reason


# -- WebSocket: the accepted token sources --


async def test_websocket_bearer_header_token_is_accepted(gateway):
    """A valid token in the `Authorization: Bearer` header opens the connection."""
    client = await gateway.websocket(token=None, headers={"Authorization": f"Bearer {gateway.token('alice')}"})
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event", "userId": "alice"})
    assert (await client.events(1))[0]["data"]["userId"] == "alice"


async def test_websocket_first_message_auth_is_accepted(gateway):
    """Without a URL or header token, a first `{"action":"auth"}` message authenticates the connection."""
    client = await gateway.websocket(token=None)
    await client.send({"action": "auth", "token": gateway.token("alice")})
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event", "userId": "alice"})
    assert (await client.events(1))[0]["data"]["userId"] == "alice"


async def test_websocket_first_message_auth_identifies_the_user(gateway):
    """The user a first-message token names is the one whose private events arrive, not anyone else's."""
    client = await gateway.websocket(token=None)
    await client.send({"action": "auth", "token": gateway.token("bob")})
    await client.subscribe("order.event")
    await gateway.publish({"type": "order.event", "userId": "alice", "id": "for-alice"},
                          {"type": "order.event", "userId": "bob", "id": "for-bob"})
    assert (await client.events(1))[0]["data"]["id"] == "for-bob"


async def test_refresh_with_same_subject_keeps_connection_open(gateway):
    """`{"action":"auth"}` with a fresh token for the same user is accepted silently and the connection stays open."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event")
    await client.send({"action": "auth", "token": gateway.token("alice", ttl=7200)})
    await client.send({"action": "ping"})
    assert await client.receive() == {"action": "pong"}
    await gateway.publish({"type": "order.event"})
    assert len(await client.events(1)) == 1


async def test_refresh_with_another_subject_gets_error_and_connection_stays_open(gateway):
    """A refresh token for another user gets an `invalid_token` error; the connection keeps its user and stays open."""
    client = await gateway.websocket(token="alice")
    await client.subscribe("order.event")
    await client.send({"action": "auth", "token": gateway.token("mallory")})
    error = await client.receive_action("error")
    assert error["code"] == "invalid_token"
    await gateway.publish({"type": "order.event", "userId": "mallory", "id": "not-for-alice"},
                          {"type": "order.event", "userId": "alice", "id": "for-alice"})
    assert (await client.events(1))[0]["data"]["id"] == "for-alice"


async def test_refresh_with_bad_token_gets_error_and_connection_stays_open(gateway):
    """A refresh with an expired token gets an `invalid_token` error and the connection stays open."""
    client = await gateway.websocket(token="alice")
    await client.send({"action": "auth", "token": gateway.token("alice", ttl=-60)})
    error = await client.receive_action("error")
    assert error["code"] == "invalid_token"
    await client.send({"action": "ping"})
    assert await client.receive() == {"action": "pong"}


# -- HTTP --


async def test_publish_without_token_is_401(gateway):
    """`POST /api/publish` without a token is answered 401 with a JSON error."""
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json={"type": "order.event"}) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_publish_with_bad_token_is_401(gateway):
    """`POST /api/publish` with a badly signed token is answered 401."""
    forged = jwt.encode(claims(roles=("publisher",)), "some-other-secret-of-sufficient-length!", algorithm="HS256")
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json={"type": "order.event"},
                                 headers={"Authorization": f"Bearer {forged}"}) as response:
        assert response.status == 401


async def test_publish_without_publisher_role_is_403(gateway):
    """A valid token without the `publisher` role is answered 403 and nothing is delivered."""
    listener = await gateway.websocket(token="alice")
    await listener.subscribe("order.event")
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json={"type": "order.event", "id": "refused"},
                                 headers={"Authorization": f"Bearer {gateway.token('alice')}"}) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "forbidden"
    await gateway.publish({"type": "order.event", "id": "accepted"})
    assert (await listener.events(1))[0]["data"]["id"] == "accepted"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "not a type"}, "$.type"),
        ({"type": "order.event", "priority": "urgent"}, "$.priority"),
        ({"type": "order.event", "payload": [1, 2]}, "$.payload"),
        ([{"type": "order.event"}, {"type": "order.event", "priority": "p9"}], "$[1].priority"),
    ],
)
async def test_invalid_envelope_is_400_naming_the_field(gateway, body, field):
    """An invalid envelope is answered 400 with the JSON path of the bad field, and nothing of the batch is stored."""
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["field"] == field, error
    assert error["code"] == "invalid_event"


@pytest.mark.parametrize(("body", "field"), [({"payload": {}}, "$.type"), ([{"type": "a"}, {}], "$[1].type")])
async def test_missing_type_is_400_naming_the_field(gateway, body, field):
    """An envelope without `type` is answered 400 whose `field` is the path of the missing `type`."""
    token = gateway.token("producer", ("publisher",))
    async with gateway.http.post(f"{gateway.base_url}/api/publish", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
        assert (await response.json())["error"].get("field") == field


async def test_history_without_token_is_401(gateway):
    """`GET /api/history` without a token is answered 401 with a JSON error."""
    async with gateway.http.get(f"{gateway.base_url}/api/history?channels=order.event") as response:
        assert response.status == 401
        assert response.content_type == "application/json"
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_history_with_expired_token_is_401(gateway):
    """`GET /api/history` with an expired token is answered 401."""
    headers = {"Authorization": f"Bearer {gateway.token('alice', ttl=-60)}"}
    async with gateway.http.get(f"{gateway.base_url}/api/history?channels=order.event", headers=headers) as response:
        assert response.status == 401


@pytest.mark.parametrize("subject", ["(no token)", "alice smith", "zoë", "x" * 257])
async def test_token_whose_sub_breaks_the_user_id_rule_is_401(gateway, subject):
    """A token whose `sub` is not 1..256 printable ASCII characters without spaces is 401 naming the claim."""
    headers = {"Authorization": f"Bearer {gateway.token(subject)}"}
    async with gateway.http.get(f"{gateway.base_url}/api/history?channels=order.event", headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error"]["message"] == \
            "token claim 'sub' must be 1 to 256 printable ASCII characters without spaces"


async def test_websocket_token_whose_sub_holds_a_space_closes_1008(gateway):
    """A WebSocket token with `sub` `(no token)` is closed 1008 naming the claim, not served as anonymous."""
    reason = await closed_with_policy_violation(gateway, f"/ws?token={gateway.token('(no token)')}")
    assert reason == "token claim 'sub' must be 1 to 256 printable ASCII characters without spaces"


# -- an empty token is a failed authentication, never "no token" --


@pytest.mark.parametrize("path", ["/sse?channels=market.ticker", "/api/history?channels=market.ticker"])
@pytest.mark.parametrize("empty", [{"query": "&token="}, {"headers": {"Authorization": "Bearer "}}],
                         ids=["query", "header"])
async def test_empty_token_is_401_even_with_anonymous_access(make_gateway, path, empty):
    """With anonymous access on, `?token=` or `Authorization: Bearer ` empty is 401 `missing token`, not anonymous."""
    gateway = await make_gateway(anonymous_access=True)
    async with gateway.http.get(f"{gateway.base_url}{path}{empty.get('query', '')}",
                                headers=empty.get("headers", {})) as response:
        assert response.status == 401
        assert (await response.json())["error"]["message"] == "missing token"


@pytest.mark.parametrize("empty", [{"query": "&token="}, {"headers": {"Authorization": "Bearer "}}],
                         ids=["query", "header"])
async def test_websocket_empty_token_closes_1008_even_with_anonymous_access(make_gateway, empty):
    """With anonymous access on, `/ws?channels=...` with an empty token is closed 1008 `missing token`."""
    gateway = await make_gateway(anonymous_access=True)
    reason = await closed_with_policy_violation(gateway, f"/ws?channels=market.ticker{empty.get('query', '')}",
                                                headers=empty.get("headers", {}))
    assert reason == "missing token"


# -- RS256 and ES256 gateways (NOTIFIER_JWT_PUBLIC_KEY) --


@pytest.fixture(params=["RS256", "ES256"])
def key_pair(request, tmp_path: Path):
    """(algorithm, private key, path of the public key PEM) for an RSA or EC P-256 identity provider."""
    if request.param == "RS256":
        private_key = rsa_key()
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "jwt-public.pem"
    path.write_bytes(public_pem(private_key))
    return request.param, private_key, path


@pytest.fixture
async def public_key_gateway(make_gateway, key_pair):
    """A gateway verifying tokens with the key pair's public key."""
    _, _, path = key_pair
    return await make_gateway(jwt_secret=None, jwt_public_key=path)


async def test_public_key_gateway_accepts_token_signed_by_private_key(public_key_gateway, key_pair):
    """With NOTIFIER_JWT_PUBLIC_KEY, a token signed by the matching private key opens a WebSocket and can publish."""
    algorithm, private_key, _ = key_pair
    gateway = public_key_gateway
    client = await gateway.websocket(f"/ws?token={jwt.encode(claims('alice'), private_key, algorithm=algorithm)}")
    await client.subscribe("order.event")
    publisher = jwt.encode(claims("producer", ("publisher",)), private_key, algorithm=algorithm)
    accepted = await gateway.publish({"type": "order.event", "userId": "alice"}, token=publisher)
    assert (await client.events(1))[0]["data"]["id"] == accepted[0]["id"]


async def test_public_key_gateway_rejects_hs256_token_signed_with_the_pem(public_key_gateway, key_pair):
    """An HS256 token using the public key PEM as its secret is closed with 1008 (algorithm confusion)."""
    _, _, path = key_pair
    token = hs256_token(claims("alice"), path.read_bytes())
    await closed_with_policy_violation(public_key_gateway, f"/ws?token={token}")


async def test_public_key_gateway_rejects_hs256_publish_signed_with_the_pem(public_key_gateway, key_pair):
    """`POST /api/publish` with an HS256 token using the public key PEM as its secret is answered 401."""
    _, _, path = key_pair
    token = hs256_token(claims("producer", ("publisher",)), path.read_bytes())
    async with public_key_gateway.http.post(f"{public_key_gateway.base_url}/api/publish",
                                            json={"type": "order.event"},
                                            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 401


async def test_public_key_gateway_rejects_token_from_another_key(public_key_gateway, key_pair):
    """A token with the right algorithm but signed by a different private key is closed with 1008."""
    algorithm, _, _ = key_pair
    other = rsa_key() if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims("alice"), other, algorithm=algorithm)
    await closed_with_policy_violation(public_key_gateway, f"/ws?token={token}")


async def test_public_key_gateway_rejects_alg_none(public_key_gateway):
    """A token with `alg: none` is closed with 1008 on a public-key gateway too."""
    await closed_with_policy_violation(public_key_gateway, f"/ws?token={unsigned_token(claims())}")


async def run_serve_expecting_exit(environment: dict[str, str]) -> tuple[int, str]:
    """`python -m notifier` with these NOTIFIER_* variables; it must exit by itself. Returns (code, output)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NOTIFIER_")}
    env.update(environment)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, output.decode()


@pytest.mark.parametrize("key", ["p384", "not-pem", "missing"])
async def test_unusable_public_key_stops_serve_with_an_error_naming_the_variable(tmp_path, key):
    """`python -m notifier` with an EC key not on P-256, a non-PEM file or no file exits 2 naming NOTIFIER_JWT_PUBLIC_KEY."""
    path = tmp_path / "jwt-public.pem"
    if key == "p384":
        path.write_bytes(public_pem(ec.generate_private_key(ec.SECP384R1())))
    elif key == "not-pem":
        path.write_text("hello\n")
    code, output = await run_serve_expecting_exit({
        "NOTIFIER_JWT_PUBLIC_KEY": str(path), "NOTIFIER_DATA_DIR": str(tmp_path / "data"), "NOTIFIER_PORT": "0"})
    assert code == 2, output
    assert output.startswith("error: NOTIFIER_JWT_PUBLIC_KEY="), output


def test_audience_claim_is_ignored_without_configured_audience():
    """Without NOTIFIER_JWT_AUDIENCE, a token carrying `aud` (as identity providers issue) is accepted."""
    token = jwt.encode({"sub": "alice", "aud": "trading-ui", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert Authenticator(secret=SECRET).verify(token).user_id == "alice"


def test_configured_audience_rejects_other_audiences():
    """With an audience configured, a token for another audience is rejected."""
    token = jwt.encode({"sub": "alice", "aud": "other-app", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(AuthenticationError):
        Authenticator(secret=SECRET, audience="trading-ui").verify(token)
