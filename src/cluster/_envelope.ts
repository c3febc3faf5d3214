// Package-internal: the envelope that room and direct frames cross the broker
// in, and the batching that lets consecutive frames to one subject share one
// broker message.
//
// Why batch: every broker message costs a publish on the sending node, a
// parse and a callback on every receiving node, and work on the broker; on
// the receiving node each message is also one pass over the room's members.
// A node that broadcasts a burst to a room (one read from a fast sender, a
// turn of a busy chat) sends it as one message, and the receiving node hands
// the whole burst to each member as one range. Order is kept: a frame for
// another subject, or any other publish of the node (presence), first sends
// what is pending, so every node receives a node's messages in the order it
// published them.
//
// Layout, integers big-endian; never JSON (this is the hot path):
//   byte 0       kind (1 = room, 2 = direct)
//   bytes 1-4    origin node id (uint32)
//   then one or more records:
//   bytes 0-7    room: the excepted session id, or -1; direct: the target
//                session id (float64: exact for safe integers)
//   bytes 8-11   how many frames the record holds (uint32, at least 1)
//   bytes 12-15  their total byte length (uint32)
//   then the frames, back to back, as the codec encoded them
// Consecutive frames with the same id share one record: the receiving node
// delivers them with one call (they are destined to the same byte streams).

/** A room broadcast. */
export const ROOM = 1;
/** A frame for one session. */
export const DIRECT = 2;
/** Bytes before the first record. */
export const HEADER = 5;
/** Bytes before each record's frames. */
export const RECORD_HEADER = 16;

/** A batch is sent once it holds this many bytes or more... */
const BATCH_MAX = 65536;
/** ...and its buffer starts at this size, then follows what the last used. */
const BATCH_MIN = 1024;

/**
 * Sends one envelope.
 *
 * @param subject The broker subject.
 * @param envelope The bytes, never modified afterwards.
 * @param frames How many frames it holds.
 */
export type SendEnvelope = (
  subject: string,
  envelope: Uint8Array,
  frames: number,
) => void;

/** Gathers the frames a node publishes into envelopes; see the file comment. */
export class EnvelopeBatcher {
  readonly #nodeId: number;
  readonly #send: SendEnvelope;
  #subject = "";
  #bytes: Uint8Array | undefined;
  #view: DataView | undefined;
  #fill = 0;
  #frames = 0;
  // The open record: where its header starts, its id and its frame count.
  #record = -1;
  #recordId = 0;
  #recordFrames = 0;
  #size = BATCH_MIN;
  #scheduled = false;
  readonly #flushBound = () => {
    this.#scheduled = false;
    this.flush();
  };

  /**
   * @param nodeId The origin written in every envelope.
   * @param send Publishes an envelope (once the task's handlers are done,
   * or earlier when something else must go first).
   */
  constructor(nodeId: number, send: SendEnvelope) {
    this.#nodeId = nodeId;
    this.#send = send;
  }

  /**
   * Adds a frame for `subject`; it leaves once the current task's
   * microtasks run, at the latest.
   *
   * @param kind {@linkcode ROOM} or {@linkcode DIRECT}.
   * @param subject The subject (it also tells the kind apart).
   * @param id The record id: excepted session (or -1), or target session.
   * @param frame The encoded frame (copied).
   */
  add(kind: number, subject: string, id: number, frame: Uint8Array): void {
    const size = frame.byteLength;
    if (this.#bytes !== undefined && subject !== this.#subject) this.flush();
    let bytes = this.#bytes;
    const sameRecord = bytes !== undefined && id === this.#recordId;
    const need = this.#fill + size + (sameRecord ? 0 : RECORD_HEADER);
    if (bytes === undefined) {
      bytes = this.#open(kind, subject, HEADER + RECORD_HEADER + size);
    } else if (need > bytes.length) {
      if (need > BATCH_MAX) {
        this.flush();
        bytes = this.#open(kind, subject, HEADER + RECORD_HEADER + size);
      } else {
        bytes = this.#grow(need);
      }
    }
    const view = this.#view!;
    if (this.#record < 0 || id !== this.#recordId) {
      this.#record = this.#fill;
      this.#recordId = id;
      this.#recordFrames = 0;
      view.setFloat64(this.#fill, id);
      view.setUint32(this.#fill + 12, 0);
      this.#fill += RECORD_HEADER;
    }
    bytes.set(frame, this.#fill);
    this.#fill += size;
    this.#frames++;
    this.#recordFrames++;
    view.setUint32(this.#record + 8, this.#recordFrames);
    view.setUint32(
      this.#record + 12,
      view.getUint32(this.#record + 12) + size,
    );
    if (this.#fill >= BATCH_MAX) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      // A microtask: after the handlers that run on this task's reads (a
      // read's frames are dispatched without yielding, and reads completed
      // together resume before it), and before the server's flush pass
      // writes to local members (setImmediate), so the longer path, through
      // the broker, starts first. Measured: at 64 messages in flight per
      // receiver, the 2-node cluster went from 0.76× to 0.89× of one
      // process with this instead of setImmediate (bench/cluster.ts).
      queueMicrotask(this.#flushBound);
    }
  }

  /** Sends what is pending now. */
  flush(): void {
    const bytes = this.#bytes;
    if (bytes === undefined) return;
    const envelope = bytes.subarray(0, this.#fill);
    const frames = this.#frames;
    // Size the next buffer for what this one needed.
    let size = BATCH_MIN;
    while (size < this.#fill && size < BATCH_MAX) size *= 2;
    this.#size = size;
    this.#bytes = undefined;
    this.#view = undefined;
    this.#frames = 0;
    this.#record = -1;
    this.#send(this.#subject, envelope, frames);
  }

  #open(kind: number, subject: string, need: number): Uint8Array {
    const bytes = new Uint8Array(Math.max(this.#size, need));
    const view = new DataView(bytes.buffer);
    bytes[0] = kind;
    view.setUint32(1, this.#nodeId);
    this.#bytes = bytes;
    this.#view = view;
    this.#subject = subject;
    this.#fill = HEADER;
    this.#frames = 0;
    this.#record = -1;
    return bytes;
  }

  #grow(need: number): Uint8Array {
    let length = this.#bytes!.length * 2;
    while (length < need) length *= 2;
    const bytes = new Uint8Array(Math.min(length, BATCH_MAX));
    bytes.set(this.#bytes!.subarray(0, this.#fill));
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer);
    return bytes;
  }
}

/** One record of a received envelope. */
export interface EnvelopeRecord {
  /** Excepted session (or -1) for a room; target session for direct. */
  id: number;
  /** How many frames `bytes` holds. */
  frames: number;
  /** The frames, back to back (a view of the envelope). */
  bytes: Uint8Array;
}

/** A received envelope, checked. */
export interface Envelope {
  /** The node that published it. */
  origin: number;
  /** Its records, in order. */
  records: EnvelopeRecord[];
  /** The frames of all records. */
  frames: number;
}

/**
 * Reads an envelope of the expected kind.
 *
 * @returns The envelope, or `undefined` when it is malformed: too short,
 * another kind, a record that overruns it or claims more frames than bytes.
 */
export function readEnvelope(
  bytes: Uint8Array,
  kind: number,
): Envelope | undefined {
  const length = bytes.length;
  if (length < HEADER + RECORD_HEADER || bytes[0] !== kind) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  const records: EnvelopeRecord[] = [];
  let frames = 0;
  let at = HEADER;
  while (at < length) {
    if (length - at < RECORD_HEADER) return undefined;
    const count = view.getUint32(at + 8);
    const size = view.getUint32(at + 12);
    const start = at + RECORD_HEADER;
    if (count < 1 || count > size || size > length - start) return undefined;
    records.push({
      id: view.getFloat64(at),
      frames: count,
      bytes: bytes.subarray(start, start + size),
    });
    frames += count;
    at = start + size;
  }
  return { origin: view.getUint32(1), records, frames };
}
