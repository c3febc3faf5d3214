// Package-internal: what a cluster's entry is on the wire to a recovery
// client (issue 17): its position record, then its frame, queued as one
// message (so a replay from the session's log sends both again, and the
// client takes the position only with the message). Built once per entry
// and per codec met, and shared by every member, as a broadcast's frame is.
import type { Codec } from "../codec/codec.ts";
import { transcode } from "../_transcode.ts";
import { positionRecord, webSocketPositionRecord } from "./_cluster_wire.ts";

/** Package-internal: see the file comment. */
export class PositionedFrames {
  // deno-lint-ignore no-explicit-any
  readonly #codec: Codec<any, any>;
  #position = -1;
  // deno-lint-ignore no-explicit-any
  readonly #byCodec = new Map<Codec<any, any>, Uint8Array | undefined>();

  /** @param codec The codec the entries' frames are in. */
  // deno-lint-ignore no-explicit-any
  constructor(codec: Codec<any, any>) {
    this.#codec = codec;
  }

  /**
   * The bytes of the entry at `position` for a session whose codec is
   * `codec`; `undefined` when that codec can't carry the frame.
   */
  for(
    position: number,
    frame: Uint8Array,
    // deno-lint-ignore no-explicit-any
    codec: Codec<any, any>,
    webSocket: boolean,
  ): Uint8Array | undefined {
    if (position !== this.#position) {
      this.#position = position;
      this.#byCodec.clear();
    }
    let bytes = this.#byCodec.get(codec);
    if (bytes !== undefined || this.#byCodec.has(codec)) return bytes;
    const own = this.#codec;
    const body = codec === own ? frame : transcode(own, codec, frame);
    if (body !== undefined) {
      const record = webSocket
        ? webSocketPositionRecord(position)
        : positionRecord(position);
      bytes = new Uint8Array(record.length + body.length);
      bytes.set(record);
      bytes.set(body, record.length);
    }
    this.#byCodec.set(codec, bytes);
    return bytes;
  }
}
