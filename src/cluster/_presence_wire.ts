// Presence's wire format: the messages nodes exchange, their limits, their
// JSON encoding, and the two subjects they travel on (`<prefix>.presence`
// for everyone, `<prefix>.presence.<node>` for one node). The presence
// protocol is low-rate control traffic, so it is JSON; room messages (the
// hot path) never go through here.
import type { Broker, BrokerSubscription } from "./broker.ts";

/**
 * One change to an entry. Join `[1, room, id, meta, since]`, update
 * `[2, room, id, meta]`, leave `[0, room, id]`.
 */
export type Op =
  | [1, string, number, unknown, number]
  | [2, string, number, unknown]
  | [0, string, number];

/** One entry of a full state: `[room, id, meta, since]`. */
export type SnapEntry = [string, number, unknown, number];

/**
 * A presence message. Every one names its sender (`n`) and the sender's
 * incarnation (`i`). `h` heartbeat and `hello` carry the sender's latest
 * delta number (`s`); `d` a numbered delta (`o`: ops); `bye` says the sender
 * is leaving; `req` asks for the receiver's full state, which comes back in
 * `snap` parts (`p` of `of`, `e`: entries) as of delta `s`.
 */
export type Message =
  | { t: "h" | "hello"; n: string; i: string; s: number }
  | { t: "d"; n: string; i: string; s: number; o: Op[] }
  | { t: "bye" | "req"; n: string; i: string }
  | {
    t: "snap";
    n: string;
    i: string;
    s: number;
    p: number;
    of: number;
    e: SnapEntry[];
  };

/** Ops per delta and entries per snapshot part, so no message grows big. */
export const CHUNK = 256;

/** Node names and prefixes: they become subject tokens. */
export const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Decodes a message.
 *
 * @returns The message, or `null` when it lacks a sender or incarnation.
 * @throws Error "Bad presence message" when the bytes aren't JSON.
 */
export function decodeMessage(bytes: Uint8Array): Message | null {
  let message: Message;
  try {
    message = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new Error("Bad presence message", { cause: error });
  }
  if (typeof message?.n !== "string" || typeof message.i !== "string") {
    return null;
  }
  return message;
}

/**
 * One node's end of the presence protocol: sends each kind of message on
 * its subject, signed with the node's name and incarnation. A publish that
 * throws goes to `onError`, never to the caller.
 */
export class PresenceWire {
  #broker: Broker;
  #prefix: string;
  #node: string;
  #incarnation: string;
  #onError: (error: unknown) => void;

  constructor(
    broker: Broker,
    prefix: string,
    node: string,
    incarnation: string,
    onError: (error: unknown) => void,
  ) {
    this.#broker = broker;
    this.#prefix = prefix;
    this.#node = node;
    this.#incarnation = incarnation;
    this.#onError = onError;
  }

  /** Receives what is sent to every node and to this one. */
  subscribe(handler: (bytes: Uint8Array) => void): BrokerSubscription[] {
    return [
      this.#broker.subscribe(`${this.#prefix}.presence`, handler),
      this.#broker.subscribe(`${this.#prefix}.presence.${this.#node}`, handler),
    ];
  }

  /** Announces this node; every other node answers with its full state. */
  hello(seq: number): void {
    this.#send(`${this.#prefix}.presence`, {
      t: "hello",
      n: this.#node,
      i: this.#incarnation,
      s: seq,
    });
  }

  /** Says this node is alive and at delta `seq`. */
  heartbeat(seq: number): void {
    this.#send(`${this.#prefix}.presence`, {
      t: "h",
      n: this.#node,
      i: this.#incarnation,
      s: seq,
    });
  }

  /** Publishes delta number `seq`. */
  delta(seq: number, ops: Op[]): void {
    this.#send(`${this.#prefix}.presence`, {
      t: "d",
      n: this.#node,
      i: this.#incarnation,
      s: seq,
      o: ops,
    });
  }

  /** Says this node is leaving: the others drop its members at once. */
  bye(): void {
    this.#send(`${this.#prefix}.presence`, {
      t: "bye",
      n: this.#node,
      i: this.#incarnation,
    });
  }

  /** Asks node `to` for its full state. */
  request(to: string): void {
    this.#send(`${this.#prefix}.presence.${to}`, {
      t: "req",
      n: this.#node,
      i: this.#incarnation,
    });
  }

  /** Sends node `to` this node's full state as of delta `seq`, in parts. */
  snapshot(to: string, seq: number, all: SnapEntry[]): void {
    const of = Math.max(1, Math.ceil(all.length / CHUNK));
    for (let p = 0; p < of; p++) {
      this.#send(`${this.#prefix}.presence.${to}`, {
        t: "snap",
        n: this.#node,
        i: this.#incarnation,
        s: seq,
        p,
        of,
        e: all.slice(p * CHUNK, (p + 1) * CHUNK),
      });
    }
  }

  #send(subject: string, message: Message): void {
    try {
      this.#broker.publish(subject, encoder.encode(JSON.stringify(message)));
    } catch (error) {
      this.#onError(error);
    }
  }
}
