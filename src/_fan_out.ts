// Package-internal: the two loops that queue one frame on many sessions, by
// reference: a broadcast (encoded once, into a shared segment) and frames
// that arrived already encoded (from another cluster node). The manager uses
// the first for everyone, the local rooms for a room; both keep every
// receiver's byte budget, overflow policy and coalescing (see
// _shared_segment.ts).
import type { Codec } from "./codec/codec.ts";
import type { Session } from "./session/session.ts";
import { sendShared } from "./session/_internals.ts";
import type { SegmentWriter } from "./_shared_segment.ts";
import { transcode } from "./_transcode.ts";
import { SharedRun } from "./session/_shared_run.ts";

/**
 * Queues `message` on every target but `exceptId` that `filter` accepts.
 * It is encoded lazily, once into `writer` for the first codec met (usually
 * the only one; `writer.codec` then names it), once more for each other
 * codec.
 *
 * Without a filter, the receivers' queues follow the broadcast's run
 * (src/session/_shared_run.ts): the channel's next broadcasts with the same
 * exception then only extend the run, whatever the number of receivers,
 * until the run ends (the receivers change, one of them gets anything
 * else, the segment fills up...).
 *
 * @returns How many sessions accepted it.
 * @throws {TypeError} When a codec cannot encode the message.
 */
export function fanOut<Data, In, Out>(
  targets: Iterable<Session<Data, In, Out>>,
  writer: SegmentWriter,
  message: Out,
  exceptId: number,
  filter: ((session: Session<Data, In, Out>) => boolean) | undefined,
): number {
  writer.codec = undefined;
  let codec: Codec<In, Out> | undefined;
  let base: Uint8Array | undefined;
  let start = 0;
  let end = 0;
  const last = writer.run;
  if (last !== undefined) {
    writer.run = undefined;
    if (last.open && filter === undefined && last.exceptId === exceptId) {
      codec = last.codec;
      try {
        writer.write(codec!, message);
      } catch (error) {
        // Not encodable: the run ends here (its followers let go of it).
        last.close();
        throw error;
      }
      base = writer.base;
      start = writer.start;
      end = writer.end;
      if (last.extend(base, start, end)) {
        writer.run = last;
        writer.runUsed(true);
        return last.followers;
      }
    }
    writer.runUsed(last.frames > 0);
    last.close();
  }
  const tryRun = filter === undefined && writer.wantsRun();
  let run: SharedRun | undefined;
  let others: Map<Codec<In, Out>, Uint8Array> | undefined;
  let accepted = 0;
  for (const session of targets) {
    if (session.id === exceptId) continue;
    if (filter !== undefined && !filter(session)) continue;
    if (base === undefined) {
      codec = session.codec;
      writer.write(codec, message);
      base = writer.base;
      start = writer.start;
      end = writer.end;
    }
    if (session.codec === codec) {
      if (run === undefined && tryRun) {
        run = new SharedRun(base, end, codec, exceptId);
      }
      if (sendShared(session, base, start, end, 1, run)) accepted++;
      else run?.close();
      continue;
    }
    run?.close();
    others ??= new Map();
    let frame = others.get(session.codec);
    if (frame === undefined) {
      frame = session.codec.encode(message);
      others.set(session.codec, frame);
    }
    if (sendShared(session, frame, 0, frame.byteLength)) accepted++;
  }
  // A run worth keeping: open, and followed by everyone who got the frame.
  if (run !== undefined && run.open && run.followers === accepted) {
    writer.run = run;
  }
  return accepted;
}

/**
 * Queues `frames` (`count` frames back to back, encoded with `codec`) on
 * every target but `exceptId` that `filter` (if any) accepts. They are copied into `writer` first: a
 * turn's frames then sit side by side and leave each member in one range,
 * as a local broadcast's do. Targets with another codec get them
 * re-encoded, once per codec (not at all when it can't take them).
 *
 * @returns How many sessions accepted them.
 */
export function fanOutFrames<Data, In, Out>(
  targets: Iterable<Session<Data, In, Out>>,
  writer: SegmentWriter,
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any>,
  frames: Uint8Array,
  exceptId: number,
  count: number,
  filter?: (session: Session<Data, In, Out>) => boolean,
): number {
  // Frames of their own: the channel's run can't take them.
  writer.endRun();
  writer.copy(frames, count);
  const { base, start, end } = writer;
  let accepted = 0;
  let others: Map<Codec<In, Out>, Uint8Array | undefined> | undefined;
  for (const session of targets) {
    if (session.id === exceptId) continue;
    if (filter !== undefined && !filter(session)) continue;
    if (session.codec === codec) {
      if (sendShared(session, base, start, end, count)) accepted++;
      continue;
    }
    others ??= new Map();
    let bytes = others.get(session.codec);
    if (bytes === undefined && !others.has(session.codec)) {
      bytes = transcode(codec, session.codec, frames);
      others.set(session.codec, bytes);
    }
    if (
      bytes !== undefined &&
      sendShared(session, bytes, 0, bytes.byteLength, count)
    ) accepted++;
  }
  return accepted;
}

/**
 * Queues `frames` (`count` frames encoded with `codec`) on one session, by
 * reference, re-encoded when its codec is another.
 *
 * @returns Whether it accepted them.
 */
export function sendFrames<Data, In, Out>(
  session: Session<Data, In, Out>,
  // deno-lint-ignore no-explicit-any
  codec: Codec<any, any>,
  frames: Uint8Array,
  count: number,
): boolean {
  const bytes = session.codec === codec
    ? frames
    : transcode(codec, session.codec, frames);
  return bytes !== undefined &&
    sendShared(session, bytes, 0, bytes.byteLength, count);
}
