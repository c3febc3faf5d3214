// Package-internal: the client's side of the WebSocket opening handshake on
// a connection it just made: writes the upgrade request, reads the
// response head under limits, checks it, and returns the bytes read past
// the head (the server's first frames) for the session to decode first.
// The caller's connect timeout bounds it (it closes the connection).
import { ResponseHeadParser } from "./_http_head.ts";
import {
  checkUpgradeResponse,
  type ClientHandshake,
  negotiatedDeflate,
} from "./_handshake.ts";
import type { DeflateParams } from "./_deflate.ts";

/**
 * Runs the handshake on `conn`.
 *
 * @returns The bytes read after the response head, and the
 * permessage-deflate agreed on, if any.
 * @throws {HandshakeError} When the server refused or answered wrongly.
 * @throws {Deno.errors.UnexpectedEof} When it hung up during the handshake.
 */
export async function dialWebSocket(
  conn: Deno.Conn,
  handshake: ClientHandshake,
): Promise<{ prelude: Uint8Array; deflate: DeflateParams | undefined }> {
  const request = handshake.request;
  for (let at = 0; at < request.length;) {
    at += await conn.write(request.subarray(at));
  }
  const parser = new ResponseHeadParser();
  const buffer = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) {
      throw new Deno.errors.UnexpectedEof(
        "The server closed the connection during the WebSocket handshake",
      );
    }
    const used = parser.push(buffer.subarray(0, n));
    if (used < 0) continue;
    await checkUpgradeResponse(parser.head!, handshake);
    return {
      prelude: buffer.slice(used, n),
      deflate: negotiatedDeflate(parser.head!, handshake),
    };
  }
}
