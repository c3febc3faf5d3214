// Package-internal: permessage-deflate (RFC 7692). Negotiation on both
// sides, and the two transforms a message goes through.
//
// Why this shape:
// - The server always answers with `server_no_context_takeover`: every
//   message it sends is compressed on its own, so a broadcast is compressed
//   once and the same frame goes to every member that negotiated the same
//   parameters (one adapter codec object per parameter set; fan-out encodes
//   once per codec object).
// - The server always answers with `client_no_context_takeover` too (RFC
//   7692 section 7.1.1.2 lets a server add it to any offer): every message a
//   client sends is then inflated on its own, by a stateless call, and a
//   session keeps no 32 KiB inflate window between messages.
// - Compression is paid once per broadcast, not per receiver. Messages up
//   to 512 bytes (most chat) go through a TypeScript encoder
//   (_small_deflate.ts: ~24% less CPU than zlib on 180-byte chat messages,
//   output as small; about even at 700 bytes, behind past that); longer
//   ones through `node:zlib`, built into Deno (no
//   dependency), on a reused zlib stream (`deflateRawSync` sets one up per
//   call, about twice the cost).
// - Inflating is bounded while it runs: `maxOutputLength` stops zlib once
//   the output passes the message limit, before the whole is allocated.
import {
  constants,
  createDeflateRaw,
  deflateRawSync,
  inflateRawSync,
  type ZlibOptions,
} from "node:zlib";
import { MessageTooBigError } from "../errors.ts";
import { WebSocketProtocolError } from "./_errors.ts";
import { deflateSmall, SMALL_DEFLATE_MAX } from "./_small_deflate.ts";
import {
  DEFAULT_DEFLATE_LEVEL,
  DEFAULT_DEFLATE_THRESHOLD,
} from "../defaults.ts";

/**
 * Options of permessage-deflate (RFC 7692) compression, for
 * `perMessageDeflate` of `listen()` and `connect()`.
 *
 * @example Compress messages of 256 bytes and more, at level 1
 * ```ts
 * import type { PerMessageDeflateOptions } from "@x/microsocket";
 *
 * const options: PerMessageDeflateOptions = { threshold: 256, level: 1 };
 * ```
 */
export interface PerMessageDeflateOptions {
  /**
   * Messages whose payload is shorter than this many bytes are sent
   * uncompressed (deflate gains nothing on them, and costs a zlib call).
   *
   * @default {128}
   */
  threshold?: number;
  /**
   * The zlib compression level, 1 (fastest) to 9 (smallest).
   *
   * @default {6}
   */
  level?: number;
}

/** What one connection negotiated. */
export interface DeflateParams {
  /** The window the sender of this end may use (9 to 15). */
  readonly windowBits: number;
  /** Payloads below this many bytes go uncompressed. */
  readonly threshold: number;
  /** The zlib level. */
  readonly level: number;
}

/** The name of the extension. */
const NAME = "permessage-deflate";
// The empty stored block a sync flush ends with (RFC 7692 section 7.2.1).
const TAIL_LENGTH = 4;

/** Calls of {@linkcode deflateMessage}, for tests: a broadcast compresses once. */
export const deflateStats = { calls: 0 };

/**
 * The options with their defaults, or `undefined` when compression is off.
 *
 * @param option `perMessageDeflate` as given.
 * @returns The threshold and level.
 */
export function deflateConfig(
  option: boolean | PerMessageDeflateOptions | undefined,
): { threshold: number; level: number } | undefined {
  if (option === undefined || option === false) return undefined;
  const o = option === true ? {} : option;
  return {
    threshold: o.threshold ?? DEFAULT_DEFLATE_THRESHOLD,
    level: o.level ?? DEFAULT_DEFLATE_LEVEL,
  };
}

type Params = Map<string, string | true>;

// An extension header value as [name, params] pairs (RFC 6455 section 9.1);
// `undefined` when it does not parse. Quoted values are unquoted.
function parseExtensions(value: string): [string, Params][] | undefined {
  const out: [string, Params][] = [];
  for (const offer of value.split(",")) {
    const parts = offer.split(";").map((s) => s.trim());
    const name = parts[0]!.toLowerCase();
    if (name === "") return undefined;
    const params: Params = new Map();
    for (const part of parts.slice(1)) {
      if (part === "") return undefined;
      const eq = part.indexOf("=");
      const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
      let param: string | true = true;
      if (eq >= 0) {
        param = part.slice(eq + 1).trim();
        if (param.startsWith('"') && param.endsWith('"') && param.length > 1) {
          param = param.slice(1, -1);
        }
      }
      // A parameter given twice makes the offer invalid (section 7.1).
      if (params.has(key)) return undefined;
      params.set(key, param);
    }
    out.push([name, params]);
  }
  return out;
}

// A window-bits value: 8 to 15 in decimal, without leading zeros (RFC 7692
// section 7.1.2: "09" is invalid, and an offer holding it is declined).
function windowBits(value: string | true): number | undefined {
  if (value === true || !/^(?:[89]|1[0-5])$/.test(value)) return undefined;
  return Number(value);
}

/**
 * The server's answer to a client's `Sec-WebSocket-Extensions` offers: the
 * first permessage-deflate offer it can meet, or `undefined` (no extension:
 * the connection is uncompressed).
 *
 * An offer is declined (RFC 7692 section 7.1) when it has an unknown or
 * repeated parameter, an invalid value, or `server_max_window_bits=8`
 * (zlib cannot write a raw deflate stream with a 256-byte window).
 *
 * @param header The request's `Sec-WebSocket-Extensions` value.
 * @param config The server's threshold and level.
 * @returns The response header value and what it agreed to.
 */
export function negotiateDeflate(
  header: string | undefined,
  config: { threshold: number; level: number },
): { response: string; params: DeflateParams } | undefined {
  if (header === undefined) return undefined;
  const offers = parseExtensions(header);
  if (offers === undefined) return undefined;
  offers: for (const [name, params] of offers) {
    if (name !== NAME) continue;
    let bits = 15;
    let response = `${NAME}; server_no_context_takeover; ` +
      "client_no_context_takeover";
    for (const [key, value] of params) {
      switch (key) {
        case "server_no_context_takeover":
        case "client_no_context_takeover":
          if (value !== true) continue offers;
          break;
        case "server_max_window_bits": {
          const n = windowBits(value);
          if (n === undefined || n < 9) continue offers;
          bits = n;
          response += `; server_max_window_bits=${n}`;
          break;
        }
        case "client_max_window_bits":
          // A hint that the client can limit its window; ours inflates any
          // window, so it is left alone (no answer needed).
          if (value !== true && windowBits(value) === undefined) {
            continue offers;
          }
          break;
        default:
          continue offers;
      }
    }
    return { response, params: { windowBits: bits, ...config } };
  }
  return undefined;
}

/**
 * What a client offers: permessage-deflate with `server_no_context_takeover`
 * (its inflater keeps no window between messages).
 */
export const CLIENT_OFFER = `${NAME}; server_no_context_takeover`;

/**
 * Checks the server's answer to {@linkcode CLIENT_OFFER}.
 *
 * @param header The response's `Sec-WebSocket-Extensions` value.
 * @param config The client's threshold and level.
 * @returns What was agreed, or an error message when the answer is not one
 * the offer allows.
 */
export function acceptDeflateResponse(
  header: string,
  config: { threshold: number; level: number },
): DeflateParams | string {
  const answers = parseExtensions(header);
  if (answers === undefined || answers.length !== 1) {
    return `Invalid Sec-WebSocket-Extensions: ${header}`;
  }
  const [name, params] = answers[0]!;
  if (name !== NAME) return `Server chose an extension that was not offered`;
  if (params.get("server_no_context_takeover") !== true) {
    return "Server did not accept server_no_context_takeover";
  }
  for (const [key, value] of params) {
    switch (key) {
      case "server_no_context_takeover":
      case "client_no_context_takeover":
        if (value !== true) return `Invalid ${key}`;
        break;
      case "server_max_window_bits":
        // Our inflater reads any window.
        if (windowBits(value) === undefined) return `Invalid ${key}`;
        break;
      default:
        // client_max_window_bits was not offered, so may not be answered.
        return `Unexpected permessage-deflate parameter ${key}`;
    }
  }
  return { windowBits: 15, ...config };
}

/**
 * Compresses one message's payload (RFC 7692 section 7.2.1): a raw deflate
 * stream of its own, sync-flushed, without the trailing `00 00 ff ff`.
 *
 * @param payload The uncompressed payload.
 * @param params The window and level.
 * @returns The compressed payload (fresh bytes).
 */
export function deflateMessage(
  payload: Uint8Array,
  params: DeflateParams,
): Uint8Array {
  deflateStats.calls++;
  // Short messages (most chat) are cheaper in TypeScript than through a
  // zlib call: see _small_deflate.ts.
  if (payload.length <= SMALL_DEFLATE_MAX) {
    return deflateSmall(payload, params.windowBits, params.level);
  }
  const key = params.level * 16 + params.windowBits;
  let deflater = deflaters.get(key);
  if (deflater === undefined) {
    deflater = ReusedDeflater.create(params.level, params.windowBits) ??
      null;
    deflaters.set(key, deflater);
  }
  if (deflater !== null) {
    const out = deflater.deflate(payload);
    if (out !== undefined) return out;
    deflaters.set(key, null); // broken: the public call from now on
  }
  const out = deflateRawSync(payload, {
    level: params.level,
    windowBits: params.windowBits,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  return new Uint8Array(
    out.buffer,
    out.byteOffset,
    out.byteLength - TAIL_LENGTH,
  );
}

// One reused deflater per level and window (null: unavailable, use
// deflateRawSync).
const deflaters = new Map<number, ReusedDeflater | null>();

// The shape of node:zlib's internal binding that Node and Deno share.
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  reset(): void;
}

// Why: `deflateRawSync` builds a whole Transform stream and a zlib state for
// every call; in Deno 2.9 that is ~35-55 us for a 200-byte message, half
// of it the setup. One zlib stream per level and window, reset after each
// message (so each is compressed on its own, as server_no_context_takeover
// requires), halves it. It drives node:zlib's internal binding (`_handle`,
// `_writeState`, as Node and Deno both have them), so it checks itself
// once against the public call and falls back to it on any surprise.
class ReusedDeflater {
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  readonly #out = new Uint8Array(16384);

  private constructor(handle: ZlibHandle, state: Uint32Array) {
    this.#handle = handle;
    this.#state = state;
  }

  static create(level: number, windowBits: number): ReusedDeflater | undefined {
    try {
      const stream = createDeflateRaw({ level, windowBits }) as unknown as {
        _handle?: Partial<ZlibHandle>;
        _writeState?: unknown;
      };
      const handle = stream._handle;
      const state = stream._writeState;
      if (
        typeof handle?.writeSync !== "function" ||
        typeof handle.reset !== "function" ||
        !(state instanceof Uint32Array) || state.length < 2
      ) {
        return undefined;
      }
      const deflater = new ReusedDeflater(handle as ZlibHandle, state);
      // The self-check: two messages (one longer than the output buffer)
      // each inflate on their own to what went in.
      const sample = new Uint8Array(40000);
      for (let i = 0; i < sample.length; i++) sample[i] = (i * 7919) % 251;
      for (const input of [sample.subarray(0, 300), sample]) {
        const compressed = deflater.deflate(input);
        if (compressed === undefined) return undefined;
        const back = inflateRawSync(compressed, {
          finishFlush: constants.Z_SYNC_FLUSH,
        });
        if (
          back.length !== input.length || !back.every((b, i) => b === input[i])
        ) {
          return undefined;
        }
      }
      return deflater;
    } catch {
      return undefined;
    }
  }

  // The payload compressed on its own, without the tail; undefined when
  // the binding misbehaved.
  deflate(payload: Uint8Array): Uint8Array | undefined {
    const handle = this.#handle;
    const state = this.#state;
    const out = this.#out;
    try {
      let parts: Uint8Array[] | undefined;
      let first: Uint8Array | undefined;
      let size = 0;
      let inOffset = 0;
      let inLength = payload.length;
      for (let rounds = 0;; rounds++) {
        if (rounds > 1 + 4 * (payload.length / out.length + 1)) {
          return undefined; // no progress: not the binding we know
        }
        handle.writeSync(
          constants.Z_SYNC_FLUSH,
          payload,
          inOffset,
          inLength,
          out,
          0,
          out.length,
        );
        const availOut = state[0]!;
        const availIn = state[1]!;
        const part = out.slice(0, out.length - availOut);
        size += part.length;
        if (first === undefined) first = part;
        else (parts ??= [first]).push(part);
        inOffset += inLength - availIn;
        inLength = availIn;
        // Room left in the output and no input left: the flush is done.
        if (availOut !== 0 && availIn === 0) break;
      }
      handle.reset();
      let whole = first!;
      if (parts !== undefined) {
        whole = new Uint8Array(size);
        let at = 0;
        for (const part of parts) {
          whole.set(part, at);
          at += part.length;
        }
      }
      if (
        size < TAIL_LENGTH || whole[size - 4] !== 0 || whole[size - 3] !== 0 ||
        whole[size - 2] !== 0xff || whole[size - 1] !== 0xff
      ) {
        return undefined;
      }
      return whole.subarray(0, size - TAIL_LENGTH);
    } catch {
      return undefined;
    }
  }
}

/**
 * Inflates one compressed message (sent without context takeover). zlib
 * stops as soon as the output passes `max`, so a small bomb never grows
 * into its whole size in memory.
 *
 * @param payload The compressed payload, without the tail.
 * @param max The message limit, in inflated bytes.
 * @param limitOption The option that set `max`, for the error.
 * @returns The inflated payload.
 * @throws {MessageTooBigError} Past `max` (close code 1009).
 * @throws {WebSocketProtocolError} On data that is not deflate (1007).
 */
export function inflateMessage(
  payload: Uint8Array,
  max: number,
  limitOption: string,
): Uint8Array {
  const options: ZlibOptions & { maxOutputLength: number } = {
    finishFlush: constants.Z_SYNC_FLUSH,
    // One past the limit, so that "exactly the limit" is told from "more".
    maxOutputLength: Math.max(1, Math.min(max + 1, 2 ** 31 - 1)),
  };
  let out: Uint8Array;
  try {
    out = inflateRawSync(payload, options);
  } catch (cause) {
    if ((cause as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new MessageTooBigError(max + 1, max, limitOption);
    }
    throw new WebSocketProtocolError(
      "Invalid compressed data",
      1007,
      "invalid compressed data",
      { cause },
    );
  }
  if (out.byteLength > max) {
    throw new MessageTooBigError(out.byteLength, max, limitOption);
  }
  // A plain Uint8Array, not a Buffer; copied when it is a small view of
  // zlib's 16 KiB output chunk, which a kept message would otherwise pin.
  return out.buffer.byteLength > 2 * out.byteLength
    ? new Uint8Array(out)
    : new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
