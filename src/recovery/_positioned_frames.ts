// Package-internal: what a cluster's entry is on the wire to a recovery
// client (issue 17): its position record, then its frame, queued as one
// message (so a replay from the session's log sends both again, and the
// client takes the position only with the message). Built once per entry
// and per codec met, into a shared segment (_shared_segment.ts), and shared
// by every member as a broadcast's frame is: a turn's entries sit side by
// side there and leave each member in one write range.
import type { Codec } from "../codec/codec.ts";
import { transcode } from "../_transcode.ts";
import { positionRecord, webSocketPositionRecord } from "./_cluster_wire.ts";
import { SegmentWriter } from "../_shared_segment.ts";

/** Where an entry's bytes are: `base[start, end)`. */
export interface PositionedFrame {
  readonly base: Uint8Array;
  readonly start: number;
  readonly end: number;
}

/** Package-internal: see the file comment. */
export class PositionedFrames {
  // deno-lint-ignore no-explicit-any
  readonly #codec: Codec<any, any>;
  #position = -1;
  // deno-lint-ignore no-explicit-any
  readonly #byCodec = new Map<Codec<any, any>, PositionedFrame | undefined>();
  readonly #writer = new SegmentWriter();

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
  ): PositionedFrame | undefined {
    if (position !== this.#position) {
      this.#position = position;
      this.#byCodec.clear();
    }
    const known = this.#byCodec.get(codec);
    if (known !== undefined || this.#byCodec.has(codec)) return known;
    let framed: PositionedFrame | undefined;
    const own = this.#codec;
    const body = codec === own ? frame : transcode(own, codec, frame);
    if (body !== undefined) {
      const record = webSocket
        ? webSocketPositionRecord(position)
        : positionRecord(position);
      const bytes = new Uint8Array(record.length + body.length);
      bytes.set(record);
      bytes.set(body, record.length);
      const writer = this.#writer;
      writer.copy(bytes, 1);
      framed = { base: writer.base, start: writer.start, end: writer.end };
    }
    this.#byCodec.set(codec, framed);
    return framed;
  }
}
