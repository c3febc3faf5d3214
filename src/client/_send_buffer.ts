// The opt-in buffer of a client's sends while it is reconnecting: bounded,
// with a policy for when it is full, emptied in order into the next session.
import type { Session } from "../session/session.ts";
import { DEFAULT_SEND_BUFFER_MESSAGES } from "../defaults.ts";
import type { SendBufferOptions } from "./options.ts";

export class SendBuffer<Out> {
  readonly #maxMessages: number;
  readonly #whenFull: "drop-newest" | "drop-oldest";
  readonly #pending: Out[] = [];

  constructor(options: true | SendBufferOptions) {
    const { maxMessages, whenFull } = {
      maxMessages: DEFAULT_SEND_BUFFER_MESSAGES,
      whenFull: "drop-newest" as const,
      ...(options === true ? {} : options),
    };
    this.#maxMessages = maxMessages;
    this.#whenFull = whenFull;
  }

  // How many messages wait.
  get size(): number {
    return this.#pending.length;
  }

  // Keeps a message for the next connection; false when it is refused
  // (full, under "drop-newest").
  add(message: Out): boolean {
    if (this.#pending.length >= this.#maxMessages) {
      if (this.#whenFull === "drop-newest") return false;
      this.#pending.shift();
    }
    this.#pending.push(message);
    return true;
  }

  // Sends the waiting messages, in order, while the session takes them;
  // the rest wait on.
  sendTo(
    session: Pick<Session<unknown, unknown, Out>, "state" | "send">,
  ): void {
    const pending = this.#pending;
    let sent = 0;
    while (sent < pending.length && session.state === "open") {
      if (!session.send(pending[sent]!)) break;
      sent++;
    }
    pending.splice(0, sent);
  }

  clear(): void {
    this.#pending.length = 0;
  }
}
