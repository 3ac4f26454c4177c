// TypeScript declarations for clients/js/notifier.js (served by the gateway at GET /client.js).

import type {
  BacktestCompleted, BacktestFailed, BacktestProgress, BacktestStarted, Envelope, RiskAlert, SystemAlert,
} from "./events";

/** The event envelope as delivered (docs/protocol.md section 3): generated in events.d.ts. */
export type { Envelope } from "./events";

/** `id`: the event's resume cursor; `channel`: its own channel, `type` or `type:key`. */
export interface EventMeta {
  id: string;
  channel: string;
}

/** The protocol's subscription options (docs/protocol.md section 5). */
export interface SubscribeOptions {
  priority?: "p0" | "p1" | "p2" | "p3";
  limit?: number;
  snapshot?: "last" | number;
  /** Only events whose `sessionId` is this trading session (also checked on the client). */
  session?: string;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface ConnectOptions {
  /** A JWT, or a function returning one (called for every connection and again before `exp`). */
  token?: TokenSource;
  /** "auto" (default): WebSocket, then SSE after 3 WebSocket failures in a row. */
  transport?: "auto" | "websocket" | "sse";
  /** "session" (default): the last event id is kept in sessionStorage, so a page reload resumes. */
  resume?: "session" | "none";
  /** Constructors for environments without globals (Node: the `ws` package, an EventSource polyfill). */
  WebSocket?: new (url: string) => WebSocket;
  EventSource?: new (url: string) => EventSource;
  /** Backoff: the first retry waits a random time up to this many ms (default 500). */
  minReconnectDelay?: number;
  /** Backoff cap in ms (default 30000). */
  maxReconnectDelay?: number;
  /** ms between the client's pings on the WebSocket (default 20000). */
  pingInterval?: number;
  /** ms without any answer after a ping before reconnecting (default 10000). */
  pongTimeout?: number;
  /** ms before the token's `exp` to refresh it (default 30000, at most half its remaining life). */
  refreshMargin?: number;
  /** sessionStorage key (default "notifier:lastEventId:<url>"). */
  storageKey?: string;
  /** fetch used once, before the first event, to read the start position from /api/history
   *  (default globalThis.fetch; null: no read, the first connection starts live). */
  fetch?: typeof fetch | null;
}

export type State = "connecting" | "live" | "recovering" | "reconnecting" | "closed";

export interface ClientEvents {
  state: State;
  recovered: { complete: boolean };
  lost: { channel: string; count: number; since: string | null };
  error: Error & { code?: string | number; reason?: string; serverMessage?: string };
}

export interface Subscription {
  unsubscribe(): void;
}

export interface NotifierClient {
  readonly state: State;
  /** The cursor of the last event handed to a handler, or the start position read before the first. */
  readonly lastEventId: string | null;
  /** Connections opened after the first one. */
  readonly reconnects: number;
  subscribe<Payload = Record<string, unknown>>(
    channel: string,
    handler: (data: Envelope<string, Payload>, meta: EventMeta) => void,
    options?: SubscribeOptions,
  ): Subscription;
  /** Returns a function that removes the listener. */
  on<Name extends keyof ClientEvents>(name: Name, fn: (value: ClientEvents[Name]) => void): () => void;
  /** Every event that matches no subscription's pattern: the gateway sends broadcast types
   *  (`alert.system`, catalog `broadcast = true`) to every connection whatever it subscribed to.
   *  The cursor (`lastEventId`) moves past them like past any event. */
  on(name: "broadcast", fn: (data: Envelope, meta: EventMeta) => void): () => void;
  close(): Promise<void>;
}

/** Connect to the gateway at its base URL ("https://host" or "http://127.0.0.1:8080"). */
export function connect(url: string, options?: ConnectOptions): NotifierClient;

/** Whether an event's channel matches a subscription pattern (docs/protocol.md section 4). */
export function channelMatches(pattern: string, channel: string): boolean;

/** A JWT's `exp` in ms since the epoch, or null. */
export function tokenExpiry(token: string): number | null;

/** Exponential backoff with full jitter: a random delay in [0, min(max, min * 2^attempt)). */
export function backoffDelay(attempt: number, min: number, max: number, random?: () => number): number;

// -- the trading streams' SSE `event:` names (docs/protocol.md section 15), for EventSource listeners --

/** GET /api/stream/backtest/{task_id}: `event:` name -> `data:` (the payload alone). */
export interface BacktestStreamEvents {
  started: BacktestStarted;
  progress: BacktestProgress;
  complete: BacktestCompleted;
  failed: BacktestFailed;
}

/** The `event:` names of the backtest stream; the stream ends after `complete` or `failed`. */
export type BacktestStreamEvent = keyof BacktestStreamEvents;

/** GET /api/stream/alerts: each alert is named by its payload's `level` in lower case. */
export type AlertStreamEvent = Lowercase<SystemAlert["level"] | RiskAlert["level"]>;

/** `data:` of the alerts stream: the whole envelope, of `alert.system` or `risk.alert`
 *  (an `alert.*` type the catalog does not know comes as a plain `Envelope`). */
export type AlertStreamData = Envelope<"alert.system", SystemAlert> | Envelope<"risk.alert", RiskAlert>;
