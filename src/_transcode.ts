// Package-internal: frames from another cluster node, re-encoded for a
// session whose codec is not the one they travel in. Servers may share one
// SessionManager (a WebSocket server beside a TCP one, as the chat example
// does); the cluster carries frames in the encoding of the server that
// joined it, so the members of the other servers need them in theirs.
import type { Codec } from "./codec/codec.ts";
import { readerOf } from "./websocket/_adapt.ts";

/**
 * Decodes `frames` (complete frames back to back, in `from`'s encoding) and
 * encodes every message again with `to`.
 *
 * Works for codecs that read what they write (lines, json,
 * lengthPrefixed), and for WebSocket adapters, whose frames are read by
 * their twin of the other role (a server's frames are unmasked): members
 * that negotiated permessage-deflate get them compressed, once per
 * variant.
 *
 * @returns The re-encoded frames back to back, or `undefined` when `from`
 * can't read them or `to` can't encode one of the messages.
 */
export function transcode(
  // deno-lint-ignore no-explicit-any
  from: Codec<any, any>,
  // deno-lint-ignore no-explicit-any
  to: Codec<any, any>,
  frames: Uint8Array,
): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    readerOf(from).decoder().decode(frames, (message: unknown) => {
      const part = to.encode(message);
      parts.push(part);
      size += part.byteLength;
    });
  } catch {
    return undefined;
  }
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
