// Package-internal: the cluster's words on the recovery wire (issue 17),
// in the extension hook _preamble.ts documents, so a version-1 peer reads
// the same lines as before.
//
//   server answer, new session:  ok 0 <id> <token> 0 <window> pos=<p> epoch=<e>
//   client hello, resume:        resume <id> <token> <received> pos=<p> epoch=<e> sent=<n>
//   server answer, resumed:      ok 1 <id> <token> <took> <window> pos=<p> epoch=<e>
//   server record before a room broadcast or direct message:
//                                MAGIC "pos <p>\n"   (TCP, TLS, Unix: at a frame start)
//                                text message "msrec1 pos <p>" (WebSocket)
//
// A record is not a message: it isn't counted in <received>, and a client
// takes its <p> as the last position it has only once the message after it
// has been decoded whole (a connection cut between the two replays both).
// <n> (sent=) is how many messages the client has sent in the session up
// to the drop (what it sends while away goes out again on the new
// connection): a node that resumes a session whose node died doesn't know
// what that node took, so it answers <took> = <n> and counts on from there
// (what the dead node read but never handled is lost: inbound is at most
// once across a node's death, exactly once across a dropped connection).
//
// <p> is the entry's position on the engine's global sequence and <e> the
// epoch naming it (history/history.ts); a client keeps the last <p> it
// read and sends it back when it resumes, on any node. A room broadcast's
// record is the same for every member: build it once per entry
// (positionRecord) and queue the same bytes to each, never a copy per
// receiver.
import { MAGIC, webSocketLine } from "./_preamble.ts";

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

/** The `sent=` word (with its leading space) of a cluster client's resume. */
export function sentWord(sent: number): string {
  if (!Number.isSafeInteger(sent) || sent < 0) {
    throw new RangeError(`Invalid count: ${sent}`);
  }
  return ` sent=${sent}`;
}

/** The `sent=` count in a hello line; `undefined` when absent or malformed. */
export function readSent(line: string): number | undefined {
  for (const word of line.split(" ")) {
    if (!word.startsWith("sent=")) continue;
    const value = word.slice(5);
    if (!COUNT.test(value)) return undefined;
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

/**
 * The WebSocket form of {@linkcode positionRecord}: an unmasked text frame
 * "msrec1 pos <position>" (never compressed, so one frame serves members
 * with and without permessage-deflate).
 */
export function webSocketPositionRecord(position: number): Uint8Array {
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new RangeError(`Invalid position: ${position}`);
  }
  return webSocketLine(`pos ${position}`, false);
}
