// The reconnect policy of a client: how long to wait before each attempt
// (exponential backoff with jitter, starting over after a stable
// connection), and which close is a refusal that ends reconnection.
import type { DecoderLink } from "../codec/codec.ts";
import {
  peerCloseCode,
  peerCloseReason,
} from "../websocket/websocket_codec.ts";
import { CloseReason } from "../close_reason.ts";
import { RefusedError } from "../errors.ts";
import {
  DEFAULT_RECONNECT_FACTOR,
  DEFAULT_RECONNECT_INITIAL_DELAY,
  DEFAULT_RECONNECT_JITTER,
  DEFAULT_RECONNECT_MAX_ATTEMPTS,
  DEFAULT_RECONNECT_MAX_DELAY,
  DEFAULT_RECONNECT_STABLE_AFTER,
} from "../defaults.ts";
import type { ReconnectOptions } from "./options.ts";

// The delays between attempts of one client. Delays grow from
// `initialDelay` by `factor` up to `maxDelay`, each spread by ±`jitter` so
// that many clients don't return at once; they start over only after a
// connection that stayed up `stableAfter` ms, so that a server that accepts
// and drops at once is retried ever more slowly, not in a tight loop.
export class Backoff {
  /** Give up after this many failed attempts in a row. */
  readonly maxAttempts: number;
  readonly #policy: Required<ReconnectOptions>;
  #delay: number;

  constructor(reconnect: true | ReconnectOptions) {
    this.#policy = {
      initialDelay: DEFAULT_RECONNECT_INITIAL_DELAY,
      maxDelay: DEFAULT_RECONNECT_MAX_DELAY,
      factor: DEFAULT_RECONNECT_FACTOR,
      jitter: DEFAULT_RECONNECT_JITTER,
      maxAttempts: DEFAULT_RECONNECT_MAX_ATTEMPTS,
      stableAfter: DEFAULT_RECONNECT_STABLE_AFTER,
      ...(reconnect === true ? {} : reconnect),
    };
    this.maxAttempts = this.#policy.maxAttempts;
    this.#delay = this.#policy.initialDelay;
  }

  // The resolved policy (recovery's quick redials reuse its delays).
  get policy(): Readonly<Required<ReconnectOptions>> {
    return this.#policy;
  }

  // The wait before the next attempt; the one after it is longer.
  next(): number {
    const policy = this.#policy;
    const wait = spread(this.#delay, policy.jitter);
    this.#delay = Math.min(this.#delay * policy.factor, policy.maxDelay);
    return wait;
  }

  // A connection that was open `ms` milliseconds was lost: when it was
  // stable, the delays start over.
  lost(ms: number): void {
    if (ms >= this.#policy.stableAfter) this.#delay = this.#policy.initialDelay;
  }
}

// A WebSocket close that refuses the client: 4401/4403 (HTTP 401/403 in
// the private range, sent by Refusal) or a 1008 that says "unauthorized".
export function refusalIn(
  session: DecoderLink,
): RefusedError | undefined {
  const code = peerCloseCode(session);
  if (code === undefined) return undefined;
  const reason = peerCloseReason(session) ?? "";
  if (
    code === 4401 || code === 4403 ||
    (code === 1008 && reason === CloseReason.Unauthorized)
  ) {
    return new RefusedError(
      reason === "" ? CloseReason.Unauthorized : reason,
      code,
    );
  }
  return undefined;
}

// A delay moved by up to ±jitter of itself, at random.
function spread(delay: number, jitter: number): number {
  return Math.max(0, delay * (1 + jitter * (Math.random() * 2 - 1)));
}
