// notifier browser client: one dependency-free ES module, served by the gateway at GET /client.js.
//
//   import { connect } from "https://notify.example.com/client.js";
//   const client = connect("https://notify.example.com", { token: () => fetchToken() });
//   client.subscribe("order.*", (data, meta) => render(data, meta.id));
//   client.on("state", (state) => showState(state));
//   client.on("broadcast", (data, meta) => toast(data.payload.message)); // alert.system, sent to everyone
//
// What it does for you (docs/protocol.md describes the wire protocol underneath):
// - one connection for every subscription: a WebSocket (first-message `auth`, `?batch=1`), or
//   Server-Sent Events; transport "auto" falls back to SSE after 3 WebSocket failures in a row;
// - exact resume: after any disconnect it subscribes again with `since` = the `id` of the last
//   event it handed to you, so every event reaches your handler once, in order; with
//   resume: "session" that id survives a page reload (sessionStorage); before the first event it
//   starts from the position GET /api/history gives for the channels;
// - the token: a string, or a function returning one (or a promise of one), called for every
//   connection and again before the token's `exp` to refresh it over the open WebSocket;
// - reconnects with capped exponential backoff and full jitter, answers the server's pings and
//   pings the server itself, reconnecting when nothing comes back (pong watchdog).

const STATES = ["connecting", "live", "recovering", "reconnecting", "closed"];
const EVENT_NAMES = ["state", "recovered", "lost", "error", "broadcast"];
const WEBSOCKET_FAILURES_BEFORE_SSE = 3;
const DEFAULTS = {
  transport: "auto",
  resume: "session",
  minReconnectDelay: 500, // ms: the first retry waits a random time up to this
  maxReconnectDelay: 30000, // ms: the cap of the exponential backoff
  pingInterval: 20000, // ms between the client's own pings on the WebSocket
  pongTimeout: 10000, // ms to wait for anything after a ping before reconnecting
  refreshMargin: 30000, // ms before `exp` at which the token is refreshed (at most half its remaining life)
  storageKey: null, // sessionStorage key; default "notifier:lastEventId:<url>"
  fetch: undefined, // fetch for the start position (default globalThis.fetch; null: start live, no history read)
};

/** Connect to the gateway at `url` (its base URL, e.g. "https://notify.example.com"). */
export function connect(url, options = {}) {
  return new NotifierClient(url, options);
}

/** True when the event channel `channel` ("type" or "type:key") matches the subscription `pattern`. */
export function channelMatches(pattern, channel) {
  const [patternType, patternKey] = splitChannel(pattern);
  const [type, key] = splitChannel(channel);
  if (patternKey !== null && patternKey !== key) return false;
  const want = patternType.split(".");
  const have = type.split(".");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === ">") return have.length > i;
    if (i >= have.length) return false;
    if (want[i] !== "*" && want[i] !== have[i]) return false;
  }
  return want.length === have.length;
}

function splitChannel(text) {
  const colon = text.indexOf(":");
  return colon < 0 ? [text, null] : [text.slice(0, colon), text.slice(colon + 1)];
}

/** The `exp` claim of a JWT in ms since the epoch, or null when it cannot be read. */
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const text = typeof atob === "function" ? atob(padded) : Buffer.from(padded, "base64").toString("binary");
    const exp = JSON.parse(text).exp;
    return typeof exp === "number" ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** A random delay in [0, min(max, min * 2^attempt)): exponential backoff with full jitter. */
export function backoffDelay(attempt, min, max, random = Math.random) {
  return random() * Math.min(max, min * 2 ** Math.min(attempt, 30));
}

class NotifierClient {
  constructor(url, options) {
    this.options = { ...DEFAULTS, ...options };
    if (!["auto", "websocket", "sse"].includes(this.options.transport)) {
      throw new TypeError(`transport must be "auto", "websocket" or "sse", not ${this.options.transport}`);
    }
    if (!["session", "none"].includes(this.options.resume)) {
      throw new TypeError(`resume must be "session" or "none", not ${this.options.resume}`);
    }
    this.url = String(url).replace(/\/+$/, "");
    this.WebSocket = this.options.WebSocket ?? globalThis.WebSocket;
    this.EventSource = this.options.EventSource ?? globalThis.EventSource;
    this.state = "connecting";
    this.reconnects = 0; // connections opened after the first one
    this._listeners = new Map(EVENT_NAMES.map((name) => [name, new Set()]));
    this._subscriptions = new Set(); // {pattern, handler, options}
    this._transport = this.options.transport === "sse" ? "sse" : "websocket";
    this._wsFailures = 0;
    this._attempt = 0; // reconnect attempts since the last connection that went live
    this._connection = null; // the current WebSocketConnection or SseConnection
    this._timer = null;
    this._closed = false;
    this._closing = null;
    this._storageKey = this.options.storageKey ?? `notifier:lastEventId:${this.url}`;
    this.lastEventId = this._loadCursor();
    this._schedule(0);
  }

  // -- the public interface --

  /** Subscribe `handler(data, meta)` to a channel pattern; `options`: {priority, limit, snapshot, session}. */
  subscribe(channel, handler, options = undefined) {
    if (typeof channel !== "string" || !channel) throw new TypeError("channel must be a non-empty string");
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    const subscription = { pattern: channel, handler, options: cleanOptions(options) };
    this._subscriptions.add(subscription);
    this._connection?.subscriptionsChanged([subscription], []);
    return {
      unsubscribe: () => {
        if (!this._subscriptions.delete(subscription)) return;
        const stillUsed = [...this._subscriptions].some((other) => other.pattern === channel);
        this._connection?.subscriptionsChanged([], stillUsed ? [] : [subscription]);
      },
    };
  }

  /** Listen to "state", "recovered", "lost", "error" or "broadcast"; returns a function that stops listening.
   *  "broadcast" listeners get `(data, meta)` of every event that matches no subscription's pattern:
   *  the gateway sends broadcast types (alert.system) to every connection whatever it subscribed to. */
  on(name, fn) {
    const listeners = this._listeners.get(name);
    if (!listeners) throw new TypeError(`unknown event ${name}; one of ${EVENT_NAMES.join(", ")}`);
    listeners.add(fn);
    return () => listeners.delete(fn);
  }

  /** Close for good; resolves once the connection is closed. */
  close() {
    if (this._closing) return this._closing;
    this._closed = true;
    clearTimeout(this._timer);
    const connection = this._connection;
    this._connection = null;
    this._closing = (connection ? connection.close() : Promise.resolve()).then(() => this._setState("closed"));
    return this._closing;
  }

  // -- what the connections call --

  _emit(name, ...values) {
    for (const fn of [...this._listeners.get(name)]) {
      try {
        fn(...values);
      } catch (error) {
        reportLater(error);
      }
    }
  }

  _setState(state) {
    if (this.state === state || !STATES.includes(state)) return;
    this.state = state;
    this._emit("state", state);
  }

  _advance(id) {
    if (id) {
      this.lastEventId = id;
      this._saveCursor(id);
    }
  }

  _deliver(channel, id, data) {
    this._advance(id);
    const meta = { id, channel };
    let matched = false;
    for (const subscription of [...this._subscriptions]) {
      if (!channelMatches(subscription.pattern, channel)) continue;
      matched = true;
      if (!optionsAdmit(subscription.options, data)) continue;
      try {
        subscription.handler(data, meta);
      } catch (error) {
        reportLater(error);
      }
    }
    // No pattern asked for it, yet the gateway sent it: a broadcast (the cursor above moved past it too).
    if (!matched) this._emit("broadcast", data, meta);
  }

  _wentLive() {
    this._retriedExpired = false;
    this._attempt = 0;
    this._wsFailures = 0;
  }

  // The connection ended. `established`: it had been accepted (an `ack`, or the SSE stream opened).
  _lost(connection, { established, tokenExpired = false, fatal = null }) {
    if (connection !== this._connection || this._closed) return;
    this._connection = null;
    if (fatal) {
      this._emit("error", fatal);
      this.close();
      return;
    }
    if (!established && this._transport === "websocket") {
      this._wsFailures += 1;
      if (this.options.transport === "auto" && this._wsFailures >= WEBSOCKET_FAILURES_BEFORE_SSE && this.EventSource) {
        this._transport = "sse";
      }
    }
    this._setState("reconnecting");
    if (tokenExpired && !this._retriedExpired) {
      this._retriedExpired = true; // once per live connection: a token function stuck on an old token backs off
      this._schedule(0); // a fresh token right away
      return;
    }
    const delay = backoffDelay(this._attempt, this.options.minReconnectDelay, this.options.maxReconnectDelay);
    this._attempt += 1;
    this._schedule(delay);
  }

  async _token() {
    const token = this.options.token;
    const value = typeof token === "function" ? await token() : token;
    if (value !== undefined && value !== null && typeof value !== "string") {
      throw new TypeError("token must be a string, or a function returning one");
    }
    return value ?? null;
  }

  _schedule(delay) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delay);
  }

  async _open(reopen = false) {
    if (this._closed) return;
    if (this._opened && !reopen) this.reconnects += 1;
    this._opened = true;
    const Connection = this._transport === "sse" ? SseConnection : WebSocketConnection;
    const connection = new Connection(this);
    this._connection = connection;
    try {
      const token = await this._token();
      checkToken(this, token);
      if (this.lastEventId === null && !connection.ended) await this._findStart(token);
      if (connection.ended) return;
      await connection.open(token);
    } catch (error) {
      if (error?.fatal) {
        this._lost(connection, { established: false, fatal: error });
        return;
      }
      this._emit("error", error);
      this._lost(connection, { established: false });
    }
  }

  // Before the first event there is no cursor to resume from: ask /api/history for the position
  // after the newest event on the channels, and subscribe from it. A disconnect before the first
  // event then loses nothing either (and the events between this read and the subscribe are replayed).
  async _findStart(token) {
    const fetchFn = this.options.fetch === undefined ? globalThis.fetch : this.options.fetch;
    const patterns = [...new Set([...this._subscriptions].map((subscription) => subscription.pattern))];
    if (!fetchFn || patterns.length === 0) return;
    try {
      const params = new URLSearchParams({ channels: patterns.join(","), limit: "1" });
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const response = await fetchFn(`${this.url}/api/history?${params}`, { headers });
      if (!response.ok) throw new Error(`GET /api/history answered ${response.status}`);
      const body = await response.json();
      if (this.lastEventId === null && typeof body.next === "string") {
        this.lastEventId = body.next;
        this._saveCursor(body.next);
      }
    } catch (error) {
      this._emit("error", Object.assign(new Error(`no start position (${error.message}): live until the first event`),
        { cause: error }));
    }
  }

  _loadCursor() {
    if (this.options.resume !== "session") return null;
    try {
      return globalThis.sessionStorage?.getItem(this._storageKey) ?? null;
    } catch {
      return null;
    }
  }

  _saveCursor(id) {
    if (this.options.resume !== "session") return;
    try {
      globalThis.sessionStorage?.setItem(this._storageKey, id);
    } catch {
      // storage full or forbidden: resume still works within this page
    }
  }

  _forgetCursor() {
    this.lastEventId = null;
    try {
      if (this.options.resume === "session") globalThis.sessionStorage?.removeItem(this._storageKey);
    } catch {
      // nothing to forget
    }
  }

  // Subscriptions grouped by their options: one `subscribe` message per group.
  _groups() {
    const groups = new Map();
    for (const subscription of this._subscriptions) {
      const key = JSON.stringify(subscription.options ?? {});
      if (!groups.has(key)) groups.set(key, { options: subscription.options, patterns: [] });
      const group = groups.get(key);
      if (!group.patterns.includes(subscription.pattern)) group.patterns.push(subscription.pattern);
    }
    return [...groups.values()];
  }
}

const PRIORITIES = ["p0", "p1", "p2", "p3"];

// A subscription's `priority` option admits events of that priority or higher (p0 is the highest),
// its `session` option only events of that trading session. Checked here too: a resume replays
// every pattern at once without options, and SSE drops options that differ between subscriptions.
function optionsAdmit(options, data) {
  if (options?.session !== undefined && data?.sessionId !== options.session) return false;
  const wanted = options?.priority;
  if (!wanted || !PRIORITIES.includes(data?.priority)) return true;
  return PRIORITIES.indexOf(data.priority) <= PRIORITIES.indexOf(wanted);
}

function cleanOptions(options) {
  if (!options) return undefined;
  const clean = {};
  for (const name of ["priority", "limit", "snapshot", "session"]) {
    if (options[name] !== undefined && options[name] !== null) clean[name] = options[name];
  }
  return Object.keys(clean).length ? clean : undefined;
}

function reportLater(error) {
  setTimeout(() => {
    throw error;
  }, 0);
}

// A fixed token past its `exp` can never be accepted again: stop instead of retrying forever.
function checkToken(client, token) {
  if (typeof client.options.token === "function" || !token) return;
  const expiresAt = tokenExpiry(token);
  if (expiresAt !== null && expiresAt <= Date.now()) {
    throw Object.assign(new Error("token expired (a fixed token; pass a function to refresh it)"), { fatal: true });
  }
}

function closeReason(code, reason) {
  return Object.assign(new Error(`connection closed: ${code} ${reason}`.trim()), { code, reason });
}

// -- WebSocket --

class WebSocketConnection {
  constructor(client) {
    this.client = client;
    this.socket = null;
    this.established = false;
    this.pendingRecoveries = 0;
    this.ended = false;
    this.closedPromise = null;
    this.pingTimer = null;
    this.watchdog = null;
    this.refreshTimer = null;
    this.tokenExpiresAt = null;
  }

  async open(token) {
    const client = this.client;
    if (!client.WebSocket) throw new Error("no WebSocket constructor: pass options.WebSocket");
    const wsUrl = client.url.replace(/^http/, "ws") + "/ws?batch=1";
    const socket = new client.WebSocket(wsUrl);
    this.socket = socket;
    this.closedPromise = new Promise((resolve) => {
      socket.onclose = (event) => {
        resolve();
        this.onClose(event.code, event.reason);
      };
    });
    socket.onerror = () => {}; // a close event always follows
    socket.onmessage = (event) => this.onFrame(event.data);
    socket.onopen = () => {
      if (token) this.send({ action: "auth", token });
      this.scheduleRefresh(token);
      this.subscribeAll();
      this.startPinging();
    };
  }

  send(message) {
    if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify(message));
  }

  // Every subscription, resuming from the client's cursor: the replay ends with `recovered`.
  subscribeAll() {
    const client = this.client;
    const since = client.lastEventId;
    const groups = client._groups();
    if (groups.length === 0) {
      this.goLive();
      return;
    }
    client._setState(since ? "recovering" : client.reconnects ? "reconnecting" : "connecting");
    if (since && groups.length > 1) {
      // One replay of every pattern from the one cursor: two replays would interleave, and an event
      // matching both would come twice. Each subscription's options are put back once it is over
      // (priority is also checked here, so no handler sees an event its options leave out).
      this.pendingRecoveries = 1;
      this.reapply = groups.filter((group) => group.options);
      this.sendSubscribe([...new Set(groups.flatMap((group) => group.patterns))], undefined, since);
      return;
    }
    this.pendingRecoveries = since ? groups.length : 0;
    for (const group of groups) this.sendSubscribe(group.patterns, group.options, since);
  }

  reapplyOptions() {
    for (const group of this.reapply ?? []) {
      const { snapshot, ...options } = group.options; // a snapshot after a replay would repeat events
      if (Object.keys(options).length) this.sendSubscribe(group.patterns, options, null);
    }
    this.reapply = null;
  }

  sendSubscribe(patterns, options, since) {
    const message = { action: "subscribe", channels: patterns };
    if (since) message.since = since;
    if (options) message.options = options;
    this.send(message);
  }

  subscriptionsChanged(added, removed) {
    if (!this.socket || this.socket.readyState !== 1) return; // sent with the others on open
    for (const subscription of added) this.sendSubscribe([subscription.pattern], subscription.options, null);
    if (removed.length) this.send({ action: "unsubscribe", channels: removed.map((s) => s.pattern) });
  }

  goLive() {
    this.established = true;
    this.client._wentLive();
    this.client._setState("live");
  }

  onFrame(text) {
    if (this.ended) return;
    this.resetWatchdog();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      this.client._emit("error", error);
      return;
    }
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) this.onMessage(message);
  }

  onMessage(message) {
    const client = this.client;
    switch (message.action) {
      case "event":
        client._deliver(message.channel, message.id, message.data);
        break;
      case "ack":
        if (!this.established && this.pendingRecoveries === 0) this.goLive();
        else this.established = true;
        break;
      case "recovered":
        // Its id is past any hole the replay's ids were held back at (protocol.md section 8).
        if (typeof message.id === "string") client._advance(message.id);
        client._emit("recovered", { complete: message.complete });
        if (this.pendingRecoveries > 0 && --this.pendingRecoveries === 0) {
          this.reapplyOptions();
          this.goLive();
        }
        break;
      case "lost":
        client._emit("lost", { channel: message.channel, count: message.count, since: message.since });
        break;
      case "ping":
        this.send({ action: "pong" });
        break;
      case "pong":
        break;
      case "error":
        this.onError(message);
        break;
    }
  }

  onError(message) {
    const client = this.client;
    const error = Object.assign(new Error(`${message.code}: ${message.message}`), {
      code: message.code,
      serverMessage: message.message,
    });
    client._emit("error", error);
    if (message.code === "invalid_cursor" && client.lastEventId) {
      // A stored cursor the gateway cannot read (another deployment's): start over, live.
      client._forgetCursor();
      this.pendingRecoveries = 0;
      this.subscribeAll();
    }
  }

  startPinging() {
    const { pingInterval } = this.client.options;
    this.pingTimer = setInterval(() => {
      this.send({ action: "ping" });
      if (!this.watchdog) this.watchdog = setTimeout(() => this.giveUp(), this.client.options.pongTimeout);
    }, pingInterval);
  }

  resetWatchdog() {
    clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  // Nothing came back after a ping: the connection is dead even if the socket does not know it yet.
  giveUp() {
    const socket = this.socket;
    this.stopTimers();
    try {
      socket.close(4000, "pong timeout");
    } catch {
      // already closing
    }
    this.onClose(4001, "pong timeout");
  }

  scheduleRefresh(token) {
    clearTimeout(this.refreshTimer);
    const client = this.client;
    if (typeof client.options.token !== "function" || !token) return;
    const expiresAt = tokenExpiry(token);
    if (expiresAt === null || (this.tokenExpiresAt !== null && expiresAt <= this.tokenExpiresAt)) return;
    this.tokenExpiresAt = expiresAt;
    const remaining = expiresAt - Date.now();
    const delay = Math.max(0, remaining - Math.min(client.options.refreshMargin, remaining / 2));
    this.refreshTimer = setTimeout(() => this.refresh(), delay);
  }

  async refresh() {
    let token;
    try {
      token = await this.client._token();
    } catch (error) {
      this.client._emit("error", error);
      return; // the server closes with "token expired"; the reconnect asks again
    }
    if (this.ended || !token) return;
    this.send({ action: "auth", token });
    this.scheduleRefresh(token);
  }

  stopTimers() {
    clearInterval(this.pingTimer);
    clearTimeout(this.watchdog);
    clearTimeout(this.refreshTimer);
    this.watchdog = null;
  }

  onClose(code, reason) {
    if (this.ended) return;
    this.ended = true;
    this.stopTimers();
    const client = this.client;
    const tokenExpired = code === 1008 && reason === "token expired";
    let fatal = null;
    if (code === 1008 && !tokenExpired && typeof client.options.token !== "function") {
      fatal = closeReason(code, reason); // a fixed token the gateway refuses will never be accepted
    } else if (code === 1008 && tokenExpired && typeof client.options.token !== "function") {
      fatal = closeReason(code, reason);
    } else if (code !== 1000 && code !== 1005 && code !== 1006) {
      client._emit("error", closeReason(code, reason));
    }
    client._lost(this, { established: this.established, tokenExpired, fatal });
  }

  close() {
    if (this.ended) return this.closedPromise ?? Promise.resolve();
    this.ended = true;
    this.stopTimers();
    if (!this.socket) return Promise.resolve();
    if (this.socket.readyState >= 2) return Promise.resolve();
    this.socket.close(1000, "client closed");
    return this.closedPromise;
  }
}

// -- Server-Sent Events --

class SseConnection {
  constructor(client) {
    this.client = client;
    this.source = null;
    this.established = false;
    this.ended = false;
    this.reopenPending = false;
  }

  async open(token) {
    const client = this.client;
    if (!client.EventSource) throw new Error("no EventSource constructor: pass options.EventSource");
    const groups = client._groups();
    if (groups.length === 0) {
      // Nothing to stream yet: SSE needs channels. Live, and opened once something is subscribed.
      this.established = true;
      client._wentLive();
      client._setState("live");
      return;
    }
    const params = new URLSearchParams();
    params.set("channels", groups.flatMap((group) => group.patterns).join(","));
    if (token) params.set("token", token);
    const options = sharedOptions(groups, client);
    for (const [name, value] of Object.entries(options ?? {})) params.set(name, String(value));
    const since = client.lastEventId;
    if (since) params.set("last_event_id", since);
    client._setState(since ? "recovering" : client.reconnects ? "reconnecting" : "connecting");
    const source = new client.EventSource(`${client.url}/sse?${params}`);
    this.source = source;
    this.resuming = Boolean(since);
    source.onopen = () => {
      this.established = true;
      if (!this.resuming) this.goLive();
    };
    source.onmessage = (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        client._emit("error", error);
        return;
      }
      const channel = data.key === null || data.key === undefined ? data.type : `${data.type}:${data.key}`;
      client._deliver(channel, event.lastEventId, data);
    };
    source.addEventListener("recovered", (event) => {
      const { complete } = JSON.parse(event.data);
      client._advance(event.lastEventId);
      client._emit("recovered", { complete });
      this.resuming = false;
      this.goLive();
    });
    source.addEventListener("lost", (event) => {
      const { channel, count, since: lostSince } = JSON.parse(event.data);
      client._emit("lost", { channel, count, since: lostSince });
    });
    // "error" is both the server's `event: error` (with data) and the transport's own failure.
    source.onerror = (event) => {
      if (typeof event?.data === "string") {
        const { code, message } = JSON.parse(event.data);
        client._emit("error", Object.assign(new Error(`${code}: ${message}`), { code, serverMessage: message }));
        return;
      }
      // The browser would retry with the old URL (and its old token): reconnect ourselves instead,
      // with a fresh token and the cursor of the last event handed to the application.
      this.end();
    };
    this.scheduleRefresh(token);
  }

  // SSE cannot take a new token on the open stream: reopen with a fresh one before `exp`.
  scheduleRefresh(token) {
    const client = this.client;
    if (typeof client.options.token !== "function" || !token) return;
    const expiresAt = tokenExpiry(token);
    if (expiresAt === null) return;
    const remaining = expiresAt - Date.now();
    const delay = Math.max(0, remaining - Math.min(client.options.refreshMargin, remaining / 2));
    this.refreshTimer = setTimeout(() => this.reopen(), delay);
  }

  goLive() {
    this.established = true;
    this.client._wentLive();
    this.client._setState("live");
  }

  end() {
    if (this.ended) return;
    this.ended = true;
    this.source?.close();
    this.client._lost(this, { established: this.established });
  }

  // Subscriptions are in the URL: reopen with the current cursor (batched: one reopen per tick).
  subscriptionsChanged() {
    if (this.reopenPending || this.ended) return;
    this.reopenPending = true;
    queueMicrotask(() => {
      this.reopenPending = false;
      this.reopen();
    });
  }

  reopen() {
    if (this.ended || this.client._connection !== this) return;
    this.close();
    this.client._connection = null;
    this.client._open(true); // same subscriptions' stream, new URL: not counted as a reconnect
  }

  close() {
    this.ended = true;
    clearTimeout(this.refreshTimer);
    this.source?.close();
    return Promise.resolve();
  }
}

// SSE carries one set of options for all its channels: with several, none (priority and session
// are still checked on the client, so handlers see what they asked for; limit and snapshot do not apply).
function sharedOptions(groups, client) {
  if (groups.length === 1) return groups[0].options;
  if (!client._warnedOptions && groups.some((group) => group.options)) {
    client._warnedOptions = true;
    client._emit("error", new Error("over SSE all subscriptions share one set of options: limit and snapshot "
      + "are not applied when subscriptions differ in options (priority and session are filtered on the client)"));
  }
  return undefined;
}
