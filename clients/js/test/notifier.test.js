// Unit tests of clients/js/notifier.js with fake WebSocket and EventSource constructors:
//   node --test clients/js/test/
// The real gateway and browsers are exercised by tests/e2e/test_browser_client.py.

import { test } from "node:test";
import assert from "node:assert/strict";

import { backoffDelay, channelMatches, connect, tokenExpiry } from "../notifier.js";

// fetch: null: no start position read from /api/history (tested on its own below).
const FAST = { minReconnectDelay: 1, maxReconnectDelay: 5, fetch: null };

class FakeWebSocket {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWebSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000, reason = "") {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }

  // -- what the tests drive --
  serverOpens() {
    this.readyState = 1;
    this.onopen?.();
  }

  serverSends(...messages) {
    this.onmessage?.({ data: JSON.stringify(messages.length === 1 ? messages[0] : messages) });
  }

  serverCloses(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

class FakeEventSource {
  static instances = [];

  constructor(url) {
    this.url = new URL(url);
    this.listeners = new Map();
    this.closed = false;
    FakeEventSource.instances.push(this);
  }

  addEventListener(name, fn) {
    this.listeners.set(name, fn);
  }

  close() {
    this.closed = true;
  }

  serverOpens() {
    this.onopen?.();
  }

  serverEvent(id, data) {
    this.onmessage?.({ lastEventId: id, data: JSON.stringify(data) });
  }

  serverNamed(name, data) {
    const event = { data: JSON.stringify(data) };
    if (name === "error") this.onerror?.(event);
    else this.listeners.get(name)?.(event);
  }

  fails() {
    this.onerror?.({});
  }
}

function reset() {
  FakeWebSocket.instances = [];
  FakeEventSource.instances = [];
}

async function until(condition, what = "condition", timeout = 2000) {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}.signature`;
}

function envelope(type, key = null, n = 0) {
  return { type, id: `e${n}`, key, payload: { n } };
}

function wsClient(options = {}) {
  return connect("http://gateway.test:8080", { WebSocket: FakeWebSocket, token: "t0", resume: "none", ...FAST, ...options });
}

async function openSocket(index = 0) {
  await until(() => FakeWebSocket.instances.length > index, `WebSocket #${index}`);
  const socket = FakeWebSocket.instances[index];
  socket.serverOpens();
  return socket;
}

test("channel patterns match as the gateway matches them", () => {
  const cases = [
    ["order.*", "order.filled", true],
    ["order.*", "order.fill.partial", false],
    ["order.*", "order", false],
    ["order.>", "order.fill.partial", true],
    ["order.>", "order", false],
    [">", "anything.at.all:KEY", true],
    ["market.ticker", "market.ticker:BTC/USDT", true],
    ["market.ticker:BTC/USDT", "market.ticker:BTC/USDT", true],
    ["market.ticker:BTC/USDT", "market.ticker:ETH/USDT", false],
    ["market.*:BTC/USDT", "market.depth:BTC/USDT", true],
    ["market.ticker:BTC/USDT", "market.ticker", false],
    ["Order.filled", "order.filled", false],
  ];
  for (const [pattern, channel, expected] of cases) {
    assert.equal(channelMatches(pattern, channel), expected, `${pattern} vs ${channel}`);
  }
});

test("backoff is full jitter under an exponential, capped bound", () => {
  assert.equal(backoffDelay(0, 500, 30000, () => 0.999999) < 500, true);
  assert.equal(backoffDelay(3, 500, 30000, () => 1), 4000);
  assert.equal(backoffDelay(20, 500, 30000, () => 1), 30000);
  assert.equal(backoffDelay(5, 500, 30000, () => 0), 0);
});

test("tokenExpiry reads exp from a JWT and gives null for anything else", () => {
  assert.equal(tokenExpiry(jwt({ sub: "a", exp: 1700000000 })), 1700000000000);
  assert.equal(tokenExpiry("not a token"), null);
});

test("the WebSocket authenticates with its first message, then subscribes every channel", async () => {
  reset();
  const client = wsClient();
  client.subscribe("order.*", () => {});
  client.subscribe("risk.alert", () => {}, { priority: "p1" });
  const socket = await openSocket();
  assert.equal(socket.url, "ws://gateway.test:8080/ws?batch=1");
  assert.deepEqual(socket.sent[0], { action: "auth", token: "t0" });
  assert.deepEqual(socket.sent[1], { action: "subscribe", channels: ["order.*"] });
  assert.deepEqual(socket.sent[2], { action: "subscribe", channels: ["risk.alert"], options: { priority: "p1" } });
  await client.close();
});

test("handlers get the envelope and {id, channel}; batch arrays are unpacked", async () => {
  reset();
  const client = wsClient();
  const seen = [];
  client.subscribe("order.*", (data, meta) => seen.push([data.payload.n, meta.id, meta.channel]));
  const socket = await openSocket();
  socket.serverSends({ action: "ack", subscribed: ["order.*"], unsubscribed: [] });
  socket.serverSends(
    { action: "event", channel: "order.filled", id: "a1.m0", data: envelope("order.filled", null, 1) },
    { action: "event", channel: "order.placed:BTC", id: "a2.m0", data: envelope("order.placed", "BTC", 2) },
    { action: "event", channel: "risk.alert", id: "a3.m0", data: envelope("risk.alert", null, 3) },
  );
  assert.deepEqual(seen, [[1, "a1.m0", "order.filled"], [2, "a2.m0", "order.placed:BTC"]]);
  assert.equal(client.lastEventId, "a3.m0");
  await client.close();
});

test("an event matching no subscription (a broadcast) reaches the broadcast listeners, not the handlers", async () => {
  reset();
  const client = wsClient();
  const handled = [];
  const broadcasts = [];
  client.subscribe("position.*", (data) => handled.push(data.type));
  client.on("broadcast", (data, meta) => broadcasts.push([data.payload.n, meta.id, meta.channel]));
  const socket = await openSocket();
  socket.serverSends({ action: "ack", subscribed: ["position.*"], unsubscribed: [] });
  socket.serverSends(
    { action: "event", channel: "alert.system", id: "a1.m0", data: envelope("alert.system", null, 1) },
    { action: "event", channel: "position.opened", id: "a2.m0", data: envelope("position.opened", null, 2) },
  );
  assert.deepEqual([handled, broadcasts], [["position.opened"], [[1, "a1.m0", "alert.system"]]]);
  await client.close();
});

test("a broadcast moves the resume cursor: the reconnect resumes after it", async () => {
  reset();
  const client = wsClient();
  client.subscribe("position.*", () => {});
  client.on("broadcast", () => {});
  const first = await openSocket(0);
  first.serverSends({ action: "ack", subscribed: ["position.*"], unsubscribed: [] });
  first.serverSends({ action: "event", channel: "alert.system", id: "a9.m0", data: envelope("alert.system") });
  first.serverCloses(1006);
  const second = await openSocket(1);
  assert.deepEqual(second.sent[1], { action: "subscribe", channels: ["position.*"], since: "a9.m0" });
  await client.close();
});

test("over SSE a broadcast reaches the broadcast listeners", async () => {
  reset();
  const client = connect("http://gateway.test:8080", { EventSource: FakeEventSource, transport: "sse", token: "t0",
    resume: "none", ...FAST });
  const broadcasts = [];
  client.subscribe("position.*", () => {});
  client.on("broadcast", (data, meta) => broadcasts.push(meta));
  await until(() => FakeEventSource.instances.length === 1, "an EventSource");
  const source = FakeEventSource.instances[0];
  source.serverOpens();
  source.serverEvent("m5", envelope("alert.system"));
  assert.deepEqual(broadcasts, [{ id: "m5", channel: "alert.system" }]);
  await client.close();
});

test("state goes connecting, live; close() resolves with state closed", async () => {
  reset();
  const client = wsClient();
  const states = [];
  client.on("state", (state) => states.push(state));
  client.subscribe("order.*", () => {});
  const socket = await openSocket();
  socket.serverSends({ action: "ack", subscribed: ["order.*"], unsubscribed: [] });
  await client.close();
  assert.deepEqual(states, ["live", "closed"]);
  assert.equal(client.state, "closed");
});

test("a recovered id becomes the cursor the next resume sends", async () => {
  reset();
  const client = wsClient();
  client.subscribe("market.*", () => {});
  const first = await openSocket(0);
  first.serverSends({ action: "ack", subscribed: ["market.*"], unsubscribed: [] });
  first.serverSends({ action: "event", channel: "market.tick", id: "a7.m3~9", data: envelope("market.tick") });
  first.serverSends({ action: "recovered", complete: false, id: "a7.m12" });
  first.serverCloses(1006);
  const second = await openSocket(1);
  assert.deepEqual(second.sent[1], { action: "subscribe", channels: ["market.*"], since: "a7.m12" });
  await client.close();
});

test("after a disconnect it resubscribes with since = the last event id, and goes live at recovered", async () => {
  reset();
  const client = wsClient();
  const states = [];
  const recovered = [];
  client.on("state", (state) => states.push(state));
  client.on("recovered", (value) => recovered.push(value));
  client.subscribe("order.*", () => {});
  const first = await openSocket(0);
  first.serverSends({ action: "ack", subscribed: ["order.*"], unsubscribed: [] });
  first.serverSends({ action: "event", channel: "order.filled", id: "a7.m0", data: envelope("order.filled") });
  first.serverCloses(1006);
  const second = await openSocket(1);
  assert.deepEqual(second.sent[1], { action: "subscribe", channels: ["order.*"], since: "a7.m0" });
  assert.equal(client.state, "recovering");
  second.serverSends({ action: "ack", subscribed: ["order.*"], unsubscribed: [] });
  second.serverSends({ action: "recovered", complete: true });
  assert.deepEqual(recovered, [{ complete: true }]);
  assert.deepEqual(states, ["live", "reconnecting", "recovering", "live"]);
  assert.equal(client.reconnects, 1);
  await client.close();
});

test("the server's ping is answered with pong", async () => {
  reset();
  const client = wsClient();
  const socket = await openSocket();
  socket.serverSends({ action: "ping" });
  assert.deepEqual(socket.sent.at(-1), { action: "pong" });
  await client.close();
});

test("lost and error messages reach their listeners", async () => {
  reset();
  const client = wsClient();
  const lost = [];
  const errors = [];
  client.on("lost", (value) => lost.push(value));
  client.on("error", (error) => errors.push(error.code));
  const socket = await openSocket();
  socket.serverSends({ action: "lost", channel: "signal.x", count: 3, since: "a1.m0" });
  socket.serverSends({ action: "error", code: "invalid_channel", message: "bad" });
  assert.deepEqual(lost, [{ channel: "signal.x", count: 3, since: "a1.m0" }]);
  assert.deepEqual(errors, ["invalid_channel"]);
  await client.close();
});

test("unsubscribe sends unsubscribe once no subscription uses the pattern", async () => {
  reset();
  const client = wsClient();
  const socket = await openSocket();
  const first = client.subscribe("order.*", () => {});
  const second = client.subscribe("order.*", () => {});
  first.unsubscribe();
  assert.equal(socket.sent.some((m) => m.action === "unsubscribe"), false);
  second.unsubscribe();
  assert.deepEqual(socket.sent.at(-1), { action: "unsubscribe", channels: ["order.*"] });
  await client.close();
});

test("a token function is called again before exp and the new token sent as auth on the open socket", async () => {
  reset();
  let calls = 0;
  const token = () => {
    calls += 1;
    return jwt({ sub: "alice", exp: Date.now() / 1000 + (calls === 1 ? 0.2 : 3600), n: calls });
  };
  const client = wsClient({ token });
  const socket = await openSocket();
  await until(() => socket.sent.filter((m) => m.action === "auth").length === 2, "the refresh auth");
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(calls, 2);
  await client.close();
});

test("a token expired close reconnects with a fresh token from the function", async () => {
  reset();
  let calls = 0;
  const client = wsClient({ token: async () => `token-${++calls}`, minReconnectDelay: 60000, maxReconnectDelay: 60000 });
  client.subscribe("order.*", () => {});
  const first = await openSocket(0);
  first.serverSends({ action: "ack", subscribed: ["order.*"], unsubscribed: [] });
  first.serverCloses(1008, "token expired");
  const second = await openSocket(1);
  assert.deepEqual(second.sent[0], { action: "auth", token: "token-2" });
  await client.close();
});

test("a fixed token the gateway refuses closes the client with an error", async () => {
  reset();
  const client = wsClient();
  const errors = [];
  client.on("error", (error) => errors.push(error.reason));
  const socket = await openSocket();
  socket.serverCloses(1008, "bad token signature");
  await until(() => client.state === "closed", "closed");
  assert.deepEqual(errors, ["bad token signature"]);
});

test("auto falls back to SSE after the WebSocket fails 3 times in a row", async () => {
  reset();
  const client = wsClient({ EventSource: FakeEventSource });
  client.subscribe("order.*", () => {});
  for (let i = 0; i < 3; i++) {
    await until(() => FakeWebSocket.instances.length > i, `attempt ${i}`);
    FakeWebSocket.instances[i].serverCloses(1006);
  }
  await until(() => FakeEventSource.instances.length === 1, "an EventSource");
  assert.equal(FakeWebSocket.instances.length, 3);
  await client.close();
});

test("the websocket transport never falls back to SSE", async () => {
  reset();
  const client = wsClient({ EventSource: FakeEventSource, transport: "websocket" });
  client.subscribe("order.*", () => {});
  for (let i = 0; i < 4; i++) {
    await until(() => FakeWebSocket.instances.length > i, `attempt ${i}`);
    FakeWebSocket.instances[i].serverCloses(1006);
  }
  await until(() => FakeWebSocket.instances.length === 5, "a fifth WebSocket");
  assert.equal(FakeEventSource.instances.length, 0);
  await client.close();
});

test("the pong watchdog reconnects when a ping gets no answer", async () => {
  reset();
  const client = wsClient({ pingInterval: 5, pongTimeout: 5 });
  client.subscribe("order.*", () => {});
  const first = await openSocket(0);
  first.serverSends({ action: "ack", subscribed: ["order.*"], unsubscribed: [] });
  await until(() => FakeWebSocket.instances.length === 2, "a reconnect");
  assert.equal(first.sent.some((m) => m.action === "ping"), true);
  await client.close();
});

test("SSE puts channels, token, options and cursor in the URL and derives each event's channel", async () => {
  reset();
  const client = connect("http://gateway.test:8080/", { EventSource: FakeEventSource, transport: "sse", token: "t0",
    resume: "none", ...FAST });
  const seen = [];
  client.subscribe("market.ticker", (data, meta) => seen.push(meta), { limit: 5 });
  await until(() => FakeEventSource.instances.length === 1, "an EventSource");
  const source = FakeEventSource.instances[0];
  assert.equal(source.url.pathname, "/sse");
  assert.equal(source.url.searchParams.get("channels"), "market.ticker");
  assert.equal(source.url.searchParams.get("token"), "t0");
  assert.equal(source.url.searchParams.get("limit"), "5");
  source.serverOpens();
  source.serverEvent("m4", envelope("market.ticker", "BTC/USDT"));
  assert.deepEqual(seen, [{ id: "m4", channel: "market.ticker:BTC/USDT" }]);
  source.fails();
  await until(() => FakeEventSource.instances.length === 2, "a reconnect");
  assert.equal(FakeEventSource.instances[1].url.searchParams.get("last_event_id"), "m4");
  assert.equal(source.closed, true);
  await client.close();
});

test("over SSE a server error event is reported without ending the stream", async () => {
  reset();
  const client = connect("http://gateway.test:8080", { EventSource: FakeEventSource, transport: "sse", token: "t0",
    resume: "none", ...FAST });
  const errors = [];
  client.on("error", (error) => errors.push(error.code));
  client.subscribe("order.*", () => {});
  await until(() => FakeEventSource.instances.length === 1, "an EventSource");
  const source = FakeEventSource.instances[0];
  source.serverOpens();
  source.serverNamed("error", { code: "history_unavailable", message: "history could not be read; live only" });
  assert.deepEqual(errors, ["history_unavailable"]);
  assert.equal(source.closed, false);
  await client.close();
});

test("over SSE a new subscription reopens the stream with the current cursor", async () => {
  reset();
  const client = connect("http://gateway.test:8080", { EventSource: FakeEventSource, transport: "sse", token: "t0",
    resume: "none", ...FAST });
  client.subscribe("order.*", () => {});
  await until(() => FakeEventSource.instances.length === 1, "an EventSource");
  FakeEventSource.instances[0].serverOpens();
  FakeEventSource.instances[0].serverEvent("a9", envelope("order.filled"));
  client.subscribe("risk.alert", () => {});
  await until(() => FakeEventSource.instances.length === 2, "the reopened stream");
  const url = FakeEventSource.instances[1].url;
  assert.equal(url.searchParams.get("channels"), "order.*,risk.alert");
  assert.equal(url.searchParams.get("last_event_id"), "a9");
  await client.close();
});

test("resume session keeps the last event id in sessionStorage for the next page", async () => {
  reset();
  const store = new Map();
  globalThis.sessionStorage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v),
    removeItem: (k) => store.delete(k) };
  try {
    const client = wsClient({ resume: "session" });
    client.subscribe("order.*", () => {});
    const socket = await openSocket(0);
    socket.serverSends({ action: "event", channel: "order.filled", id: "a5.m1", data: envelope("order.filled") });
    await client.close();
    const reloaded = wsClient({ resume: "session" });
    reloaded.subscribe("order.*", () => {});
    const next = await openSocket(1);
    assert.deepEqual(next.sent[1], { action: "subscribe", channels: ["order.*"], since: "a5.m1" });
    await reloaded.close();
  } finally {
    delete globalThis.sessionStorage;
  }
});

test("a resume with subscriptions of different options is one replay, options put back after it", async () => {
  reset();
  const client = wsClient();
  client.subscribe("order.*", () => {});
  client.subscribe("risk.alert", () => {}, { priority: "p1", snapshot: "last" });
  const first = await openSocket(0);
  first.serverSends({ action: "event", channel: "order.filled", id: "a3", data: envelope("order.filled") });
  first.serverCloses(1006);
  const second = await openSocket(1);
  assert.deepEqual(second.sent.slice(1), [{ action: "subscribe", channels: ["order.*", "risk.alert"], since: "a3" }]);
  second.serverSends({ action: "ack", subscribed: ["order.*", "risk.alert"], unsubscribed: [] },
    { action: "recovered", complete: true });
  assert.deepEqual(second.sent.slice(2), [{ action: "subscribe", channels: ["risk.alert"], options: { priority: "p1" } }]);
  assert.equal(client.state, "live");
  await client.close();
});

test("a subscription's priority option is also checked on the client", async () => {
  reset();
  const client = wsClient();
  const seen = [];
  client.subscribe("risk.*", (data) => seen.push(data.priority), { priority: "p1" });
  const socket = await openSocket();
  for (const priority of ["p0", "p1", "p2", "p3"]) {
    socket.serverSends({ action: "event", channel: "risk.alert", id: `a${priority}`,
      data: { ...envelope("risk.alert"), priority } });
  }
  assert.deepEqual(seen, ["p0", "p1"]);
  await client.close();
});

test("a subscription's session option is sent and also checked on the client", async () => {
  reset();
  const client = wsClient();
  const seen = [];
  client.subscribe("order.*", (data) => seen.push(data.payload.n), { session: "s1" });
  const socket = await openSocket();
  assert.deepEqual(socket.sent[1], { action: "subscribe", channels: ["order.*"], options: { session: "s1" } });
  for (const [n, sessionId] of [[1, "s2"], [2, "s1"], [3, null]]) {
    socket.serverSends({ action: "event", channel: "order.filled", id: `a${n}`,
      data: { ...envelope("order.filled"), sessionId, payload: { n } } });
  }
  assert.deepEqual(seen, [2]);
  await client.close();
});

test("before the first event the client subscribes from the position /api/history gives", async () => {
  reset();
  const requests = [];
  const fetch = async (url, init) => {
    requests.push([url, init.headers.Authorization]);
    return { ok: true, json: async () => ({ events: [], next: "a9.m2", complete: true }) };
  };
  const client = wsClient({ fetch });
  client.subscribe("order.*", () => {});
  client.subscribe("risk.alert", () => {});
  const socket = await openSocket();
  assert.deepEqual(requests, [["http://gateway.test:8080/api/history?channels=order.*%2Crisk.alert&limit=1", "Bearer t0"]]);
  assert.deepEqual(socket.sent[1], { action: "subscribe", channels: ["order.*", "risk.alert"], since: "a9.m2" });
  await client.close();
});

test("without a start position the client reports an error and subscribes live", async () => {
  reset();
  const errors = [];
  const client = wsClient({ fetch: async () => ({ ok: false, status: 403, json: async () => ({}) }) });
  client.on("error", (error) => errors.push(error.message));
  client.subscribe("order.*", () => {});
  const socket = await openSocket();
  assert.deepEqual(socket.sent[1], { action: "subscribe", channels: ["order.*"] });
  assert.match(errors[0], /403/);
  await client.close();
});
