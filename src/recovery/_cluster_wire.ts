// Package-internal: the cluster's words on the recovery wire (issue 17),
// in the extension hook _preamble.ts documents, so a version-1 peer reads
// the same lines as before. Not used by the server or client yet: the
// cluster wiring that sends and reads them is the next step (see
// src/cluster/cluster_recovery.ts).
//
//   server answer, new session:  ok 0 <id> <token> 0 <window> pos=<p> epoch=<e>
//   client hello, resume:        resume <id> <token> <received> pos=<p> epoch=<e>
//   server record before a room broadcast or direct message:
//                                MAGIC "pos <p>\n"
//
// <p> is the entry's position on the engine's global sequence and <e> the
// epoch naming it (history/history.ts); a client keeps the last <p> it
// read and sends it back when it resumes, on any node. A room broadcast's
// record is the same for every member: build it once per entry
// (positionRecord) and queue the same bytes to each, never a copy per
// receiver.
import { MAGIC } from "./_preamble.ts";

/** A global position and its epoch, as the extension words carry them. */
export interface WirePosition {
  /** The last position (of the session's start, or received). */
  readonly position: number;
  /** The epoch of the engine's sequence. */
  readonly epoch: string;
}

const EPOCH = /^[\x21-\x7e]{1,64}$/;
const COUNT = /^(0|[1-9][0-9]{0,15})$/;
const utf8 = new TextEncoder();

/** The extension words (with their leading space) for a hello or an answer. */
export function positionWords(at: WirePosition): string {
  if (!Number.isSafeInteger(at.position) || at.position < 0) {
    throw new RangeError(`Invalid position: ${at.position}`);
  }
  if (!EPOCH.test(at.epoch)) throw new TypeError("Invalid epoch");
  return ` pos=${at.position} epoch=${at.epoch}`;
}

/**
 * The position and epoch in a hello or answer line; `undefined` when it
 * has none (a local session) or they are malformed.
 */
export function readPosition(line: string): WirePosition | undefined {
  let position: number | undefined;
  let epoch: string | undefined;
  for (const word of line.split(" ")) {
    const at = word.indexOf("=");
    if (at === -1) continue;
    const key = word.slice(0, at);
    const value = word.slice(at + 1);
    if (key === "pos" && COUNT.test(value)) position = Number(value);
    else if (key === "epoch" && EPOCH.test(value)) epoch = value;
  }
  if (
    position === undefined || !Number.isSafeInteger(position) ||
    epoch === undefined
  ) return undefined;
  return { position, epoch };
}

/** MAGIC "pos <position>\n": the record ahead of an entry's frame. */
export function positionRecord(position: number): Uint8Array {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new RangeError(`Invalid position: ${position}`);
  }
  const text = utf8.encode(`pos ${position}\n`);
  const out = new Uint8Array(MAGIC.length + text.length);
  out.set(MAGIC);
  out.set(text, MAGIC.length);
  return out;
}

/**
 * The position in a record's line (after MAGIC, without the newline);
 * `undefined` when the line is not a `pos` record.
 */
export function parsePositionRecord(line: string): number | undefined {
  const words = line.split(" ");
  if (words[0] !== "pos" || words.length < 2 || !COUNT.test(words[1]!)) {
    return undefined;
  }
  const n = Number(words[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}
