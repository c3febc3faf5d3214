// Package-internal: the codec-adaptation table, how each built-in codec's
// messages map onto WebSocket messages (lines() and json() as text,
// lengthPrefixed() as binary payloads, any other codec as binary messages
// holding whole frames), and the WebSocketMapping interface that a custom
// mapping implements (public, exported by websocket_codec.ts).
import type { Codec } from "../codec/codec.ts";
import { kindOf } from "../codec/_kind.ts";
import {
  encodeFrameInto,
  encodeHeaderInto,
  encodeTextFrameInto,
  headerSize,
  Opcode,
} from "./_frame_writer.ts";
import { applyMask } from "./_mask.ts";
import { WebSocketCloseError } from "./_errors.ts";

/**
 * How one codec's messages travel as WebSocket messages: `encode` turns a
 * message into the payload of one WebSocket message (a string is sent as a
 * text message, bytes as a binary one), `decode` turns a received message
 * into zero or more of the codec's messages.
 *
 * The built-in codecs have one already (see {@linkcode webSocketCodec});
 * pass your own as `mapping` for a custom codec that should not use the
 * default (one binary message per encoded frame).
 *
 * @typeParam In The type of decoded messages.
 * @typeParam Out The type of messages to encode.
 *
 * @example Numbers as text messages
 * ```ts
 * import type { WebSocketMapping } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const numbers: WebSocketMapping<number, number> = {
 *   encode: (n) => String(n),
 *   decode(message, emit) {
 *     if (typeof message === "string") emit(Number(message));
 *   },
 * };
 * assert.equal(numbers.encode(42), "42");
 * ```
 */
export interface WebSocketMapping<In, Out> {
  /**
   * The payload of the one WebSocket message that carries `message`.
   *
   * @param message The message to send.
   * @returns A string for a text message, bytes for a binary one.
   * @throws {TypeError} When the message cannot be represented.
   */
  encode(message: Out): string | Uint8Array;
  /**
   * Turns a received WebSocket message into messages.
   *
   * @param message A string for a text message, bytes for a binary one.
   * @param emit Receives each decoded message.
   * @throws {DecodeError} When the message is not valid for the codec.
   */
  decode(message: string | Uint8Array, emit: (message: In) => void): void;
}

// How a message is written into a frame at an offset: -1 when it does not
// fit.
export type EncodeInto<Out> = (
  message: Out,
  target: Uint8Array,
  offset: number,
  mask: boolean,
) => number;

/** A mapping, and how it writes a message into a frame in place. */
export interface Plan<In, Out> {
  mapping: WebSocketMapping<In, Out>;
  encodeInto: EncodeInto<Out> | undefined;
}

// By the codec's kind, not its name: a custom codec named "lines" is framed
// as any other custom codec.
/** The plan of a built-in codec (by kind), else whole frames. */
export function builtInPlan<In, Out>(inner: Codec<In, Out>): Plan<In, Out> {
  switch (kindOf(inner)?.framing) {
    case "lines":
      return linesPlan() as unknown as Plan<In, Out>;
    case "json":
      return jsonPlan() as unknown as Plan<In, Out>;
    case "lengthPrefixed":
      return bytesPlan() as unknown as Plan<In, Out>;
    default:
      return framesPlan(inner);
  }
}

function linesPlan(): Plan<string, string> {
  const check = (line: string) => {
    if (typeof line !== "string") {
      throw new TypeError(
        `lines() encodes strings, got ${line === null ? "null" : typeof line}`,
      );
    }
    if (line.includes("\n")) {
      throw new TypeError("Cannot encode a line that contains a line feed");
    }
  };
  return {
    mapping: {
      encode(line) {
        check(line);
        return line;
      },
      decode(message, emit) {
        if (typeof message !== "string") throw unsupported("binary", "lines()");
        if (!message.includes("\n")) {
          emit(message);
          return;
        }
        const parts = message.split("\n");
        // "a\n" is one line, as it would be over TCP.
        if (parts[parts.length - 1] === "") parts.pop();
        for (const part of parts) {
          emit(part.endsWith("\r") ? part.slice(0, -1) : part);
        }
      },
    },
    encodeInto(line, target, offset, mask) {
      check(line);
      return encodeTextFrameInto(target, offset, line, true, mask);
    },
  };
}

function jsonPlan(): Plan<unknown, unknown> {
  const stringify = (value: unknown): string => {
    const text = JSON.stringify(value);
    if (typeof text !== "string") {
      throw new TypeError(`Cannot encode ${typeof value} as JSON`);
    }
    return text;
  };
  return {
    mapping: {
      encode: stringify,
      decode(message, emit) {
        if (typeof message !== "string") throw unsupported("binary", "json()");
        let value: unknown;
        try {
          value = JSON.parse(message);
        } catch (cause) {
          throw new WebSocketCloseError("Invalid JSON", 1007, {
            cause,
            closeReason: "invalid json",
          });
        }
        emit(value);
      },
    },
    encodeInto(value, target, offset, mask) {
      return encodeTextFrameInto(target, offset, stringify(value), true, mask);
    },
  };
}

function bytesPlan(): Plan<Uint8Array, Uint8Array> {
  const check = (payload: Uint8Array) => {
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError("lengthPrefixed() encodes Uint8Array payloads");
    }
  };
  return {
    mapping: {
      encode(payload) {
        check(payload);
        return payload;
      },
      decode(message, emit) {
        if (typeof message === "string") {
          throw unsupported("text", "lengthPrefixed()");
        }
        emit(message);
      },
    },
    encodeInto(payload, target, offset, mask) {
      check(payload);
      return encodeFrameInto(
        target,
        offset,
        Opcode.binary,
        payload,
        true,
        mask,
      );
    },
  };
}

// Any other codec: each binary message carries whole frames of the codec.
// Decoding needs a decoder per connection, so the mapping's decode is a
// stand-in that WebSocketDecoder replaces (see `frames`).
function framesPlan<In, Out>(inner: Codec<In, Out>): Plan<In, Out> {
  const innerEncodeInto = inner.encodeInto?.bind(inner);
  const mapping: FramesMapping<In, Out> = {
    frames: inner,
    encode: (message) => inner.encode(message),
    decode() {
      throw new Error("unreachable: frames are decoded per connection");
    },
  };
  return {
    mapping,
    encodeInto: innerEncodeInto === undefined
      ? undefined
      : (message, target, offset, mask) => {
        // Room for the longest header, moved back once the size is known.
        const reserved = 10 + (mask ? 4 : 0);
        const start = offset + reserved;
        if (start > target.length) return -1;
        const end = innerEncodeInto(message, target, start);
        if (end < 0) return -1;
        const length = end - start;
        const actual = headerSize(length, mask);
        if (actual < reserved) {
          target.copyWithin(offset + actual, start, end);
        }
        const payload = encodeHeaderInto(
          target,
          offset,
          Opcode.binary,
          length,
          true,
          mask,
        );
        if (mask) {
          applyMask(
            target.subarray(payload, payload + length),
            target,
            payload - 4,
            0,
          );
        }
        return payload + length;
      },
  };
}

/** The mapping of a codec whose frames travel whole in binary messages. */
export interface FramesMapping<In, Out> extends WebSocketMapping<In, Out> {
  frames: Codec<In, Out>;
}

/** The 1003 error for a message of the wrong kind (text or binary). */
export function unsupported(kind: string, codec: string): WebSocketCloseError {
  return new WebSocketCloseError(
    `A ${kind} message is not a message of ${codec}`,
    1003,
    { closeReason: `${kind} message for ${codec}` },
  );
}
