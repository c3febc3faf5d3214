// Package-internal: the payload of a length-announced frame, collected
// across reads. Its storage grows with the bytes that actually arrive, never
// with what the header announced (or 4 bytes could make us allocate a
// megabyte), and ends at exactly the frame's length.

/** A frame payload being collected; see the file comment. */
export class PartialPayload {
  readonly #initial: number;
  readonly #keep: number;
  #bytes: Uint8Array | undefined;
  #length = 0;
  #filled = 0;
  #active = false;

  /**
   * @param initial The first allocation for a frame, in bytes.
   * @param keep Storage up to this size is reused for the next frame (0:
   * every finished payload is handed over and never touched again).
   */
  constructor(initial: number, keep: number) {
    this.#initial = initial;
    this.#keep = keep;
  }

  /** Whether a frame is being collected. */
  get active(): boolean {
    return this.#active;
  }

  /** Payload bytes collected so far. */
  get filled(): number {
    return this.#filled;
  }

  /** Starts collecting a payload of `length` (> 0) bytes. */
  start(length: number): void {
    this.#active = true;
    this.#length = length;
    this.#filled = 0;
    const first = Math.min(length, this.#initial);
    if (this.#bytes === undefined || this.#bytes.length < first) {
      this.#bytes = new Uint8Array(first);
    }
  }

  /**
   * Copies what belongs to the payload from `chunk[offset, end)`.
   *
   * @returns How many bytes it took.
   */
  append(chunk: Uint8Array, offset: number, end: number): number {
    const take = Math.min(this.#length - this.#filled, end - offset);
    let bytes = this.#bytes!;
    if (this.#filled + take > bytes.length) {
      const grown = new Uint8Array(
        Math.min(this.#length, Math.max(bytes.length * 2, this.#filled + take)),
      );
      grown.set(bytes.subarray(0, this.#filled));
      this.#bytes = bytes = grown;
    }
    bytes.set(chunk.subarray(offset, offset + take), this.#filled);
    this.#filled += take;
    return take;
  }

  /** Whether the whole payload has arrived. */
  get complete(): boolean {
    return this.#filled === this.#length;
  }

  /**
   * Ends the frame. The payload is the first `length` bytes of the result
   * (exactly all of it when the storage is not reused).
   */
  finish(): Uint8Array {
    const bytes = this.#bytes!;
    this.#active = false;
    this.#filled = 0;
    if (bytes.length > this.#keep) this.#bytes = undefined;
    return bytes;
  }
}
