// Package-internal: one WebSocket connection's decoder, which the adapters
// of websocket_codec.ts make per session: the frame parser, the codec's
// mapping, pongs, the ping rate, inflation, and the close handshake (the
// peer's close frame and the one sent back). A registry by session serves
// closeWebSocket() and peerCloseCode().
import type { Decoder, DecoderLink, Heartbeat } from "../codec/codec.ts";
import { MessageTooBigError } from "../errors.ts";
import { CloseReason } from "../close_reason.ts";
import {
  FrameParser,
  type FrameParserOptions,
  type FrameSink,
  type WebSocketMessage,
} from "./_frame_parser.ts";
import { encodeCloseFrame, encodeFrame, Opcode } from "./_frame_writer.ts";
import { type DeflateParams, inflateMessage } from "./_deflate.ts";
import { WebSocketCloseError } from "./_errors.ts";
import {
  type FramesMapping,
  unsupported,
  type WebSocketMapping,
} from "./_mappings.ts";
import { closeFor } from "./_close_codes.ts";

// Each session's decoder, for closeWebSocket() and peerCloseCode().
// deno-lint-ignore no-explicit-any
const decoders = new WeakMap<object, WebSocketDecoder<any, any>>();

/** What a connection's decoder is made with, once per adapter. */
export interface DecoderSettings<In, Out> {
  role: "server" | "client";
  mask: boolean;
  maxMessageBytes: number;
  limitOption: string;
  maxPings: number;
  mapping: WebSocketMapping<In, Out>;
  innerBeat: Heartbeat<In> | undefined;
  innerPong: Uint8Array | undefined;
  deflate: DeflateParams | undefined;
  /**
   * What the parsers are made with (role, limit, inflation): one object
   * for the adapter, so that every session's parser shares one config.
   */
  parser: FrameParserOptions;
}

/**
 * The settings of an adapter's decoders, made once per adapter.
 *
 * @param settings Everything but the parser's options, made from them.
 * @returns The settings.
 */
export function decoderSettings<In, Out>(
  settings: Omit<DecoderSettings<In, Out>, "parser">,
): DecoderSettings<In, Out> {
  const { maxMessageBytes, limitOption, deflate } = settings;
  return Object.freeze({
    ...settings,
    parser: {
      role: settings.role,
      maxMessageBytes,
      limitOption,
      ...(deflate === undefined ? {} : {
        inflate: (payload: Uint8Array): Uint8Array =>
          inflateMessage(payload, maxMessageBytes, limitOption),
      }),
    },
  });
}

// One connection's decoder: the frame parser, the mapping, pongs, and the
// close handshake. It is its parser's sink, and holds no closures unless
// interceptMessages() or an inner heartbeat asks for one: a million quiet
// sessions each hold one (issue 19 §4).
export class WebSocketDecoder<In, Out> implements Decoder<In>, FrameSink {
  readonly #parser: FrameParser;
  readonly #link: DecoderLink | undefined;
  readonly #settings: DecoderSettings<In, Out>;
  readonly #frames: Decoder<In> | undefined;
  #emit: (message: In) => void = ignore;
  // For an inner codec with a heartbeat, what the mapping emits to: it
  // answers and drops the codec's pings (made on the first message; else
  // the mapping emits straight to the session).
  #onInner: ((message: In) => void) | undefined;
  // Shown every whole message first, when interceptMessages() set it.
  #intercept: ((message: WebSocketMessage) => boolean) | undefined;
  #window = 0;
  #controls = 0;
  // The connection's close code as the peer ended it: its close frame's
  // code (1005 without one), or 1006 when its input ended (or was reset)
  // without a close frame (RFC 6455 section 7.1.5); unset while open, or
  // when we closed first.
  #peerCode: number | undefined;
  #peerReason = "";
  // Whether the peer's close frame arrived (and is to be echoed).
  #peerFrame = false;
  #closeSent = false;
  #chosen: [number, string] | undefined;

  constructor(
    link: DecoderLink | undefined,
    settings: DecoderSettings<In, Out>,
  ) {
    this.#link = link;
    this.#settings = settings;
    // Looked up by the session (peerCloseCode(), closeWebSocket()), which
    // the link speaks for; a resumed session's new decoder replaces the old.
    if (link !== undefined) decoders.set(link.owner ?? link, this);
    const framesOf = (settings.mapping as Partial<FramesMapping<In, Out>>)
      .frames;
    this.#frames = framesOf?.decoder();
    this.#parser = new FrameParser(settings.parser, this);
  }

  get buffered(): number {
    return this.#parser.buffered + (this.#frames?.buffered ?? 0);
  }

  /** The close code the peer sent, once it has. */
  get peerCloseCode(): number | undefined {
    return this.#peerCode;
  }

  /** The close reason the peer sent, once it has. */
  get peerCloseReason(): string | undefined {
    return this.#peerCode === undefined ? undefined : this.#peerReason;
  }

  /**
   * Shows every whole message to `intercept` first; a message it returns
   * `true` for is consumed there (not mapped, not emitted). A cluster
   * client's position records travel as messages of their own (issue 17,
   * src/recovery/_positions.ts).
   */
  interceptMessages(intercept: (message: WebSocketMessage) => boolean): void {
    this.#intercept = intercept;
  }

  decode(chunk: Uint8Array, emit: (message: In) => void): void {
    this.#emit = emit;
    this.#parser.feed(chunk);
  }

  /** Each whole message the parser read (the FrameSink side). */
  onMessage(message: WebSocketMessage): void {
    const intercept = this.#intercept;
    if (intercept !== undefined && intercept(message)) return;
    const onInner = this.#settings.innerBeat === undefined
      ? this.#emit
      : (this.#onInner ??= this.#innerBeatFilter());
    const frames = this.#frames;
    if (frames === undefined) {
      this.#settings.mapping.decode(message, onInner);
      return;
    }
    if (typeof message === "string") throw unsupported("text", "this codec");
    frames.decode(message, onInner);
    if (frames.buffered !== 0) {
      throw new WebSocketCloseError(
        "A binary message must hold whole frames",
        1007,
        { closeReason: "partial frame in binary message" },
      );
    }
  }

  /** A ping the parser read: answered with a pong. */
  onPing(payload: Uint8Array): void {
    this.#control();
    this.#link?.sendFrame(
      encodeFrame(Opcode.pong, payload, true, this.#settings.mask),
    );
  }

  /** A pong the parser read. */
  onPong(): void {
    this.#control();
  }

  /** The peer's close frame. */
  onClose(code: number, reason: string): void {
    this.#peerCode = code;
    this.#peerReason = reason;
    this.#peerFrame = true;
    void this.#link?.close(CloseReason.Eof);
  }

  // For an inner codec with a heartbeat: its pings are answered, its pongs
  // dropped, anything else emitted. Made once per decoder, on first use.
  #innerBeatFilter(): (message: In) => void {
    return (message: In): void => {
      const beat = this.#settings.innerBeat!;
      if (beat.isPing(message)) {
        const pong = this.#settings.innerPong;
        if (pong !== undefined) this.#link?.sendFrame(pong);
        return;
      }
      if (beat.isPong(message)) return;
      this.#emit(message);
    };
  }

  /**
   * Takes one whole message that arrived without framing (Deno's native
   * WebSocket, src/transport/native.ts), `size` bytes long: the same limit
   * and mapping as a parsed one, no frame built or parsed.
   */
  decodeMessage(
    message: WebSocketMessage,
    size: number,
    emit: (message: In) => void,
  ): void {
    const { maxMessageBytes, limitOption } = this.#settings;
    if (size > maxMessageBytes) {
      throw new MessageTooBigError(size, maxMessageBytes, limitOption);
    }
    this.#emit = emit;
    this.onMessage(message);
  }

  /**
   * The end of the input: without the peer's close frame, the connection's
   * close code is 1006 (it is never sent). Input that ends inside a frame or
   * a fragmented message is a TruncatedFrameError (close reason
   * `"truncated frame"`; the close frame a half-closed peer may still read
   * says 1002).
   */
  end(): void {
    this.#peerEnded(1006, "");
    this.#parser.end();
  }

  /**
   * Records how the peer closed a connection whose frames are not parsed
   * here (Deno's native WebSocket gives the code of its close event), unless
   * we closed first.
   */
  peerClosed(code: number, reason: string): void {
    this.#peerEnded(code, reason);
  }

  #peerEnded(code: number, reason: string): void {
    if (this.#peerCode !== undefined || this.#closeSent) return;
    this.#peerCode = code;
    this.#peerReason = reason;
  }

  closeWith(code: number, reason: string): void {
    this.#chosen = [code, reason];
  }

  closeFrame(reason: string, error: unknown): Uint8Array | undefined {
    if (this.#closeSent) return undefined;
    if (reason === CloseReason.Reset) this.#peerEnded(1006, "");
    this.#closeSent = true;
    const mask = this.#settings.mask;
    const peer = this.#peerCode;
    if (peer !== undefined && this.#peerFrame) {
      // Echo the peer's close (RFC 6455 section 5.5.1).
      return peer === 1005
        ? encodeCloseFrame(undefined, "", mask)
        : encodeCloseFrame(peer, this.#peerReason, mask);
    }
    if (this.#chosen !== undefined) {
      return encodeCloseFrame(this.#chosen[0], this.#chosen[1], mask);
    }
    if (reason === CloseReason.Reset) return undefined;
    const [code, text] = closeFor(reason, error);
    return encodeCloseFrame(code, text, mask);
  }

  // Bounds control frames per second: a ping flood would otherwise make us
  // write as fast as the peer can send.
  #control(): void {
    const now = Math.floor(performance.now() / 1000);
    if (now !== this.#window) {
      this.#window = now;
      this.#controls = 0;
    }
    if (++this.#controls > this.#settings.maxPings) {
      throw new WebSocketCloseError("Too many pings", 1008);
    }
  }
}

/** The WebSocket decoder of a session, if it has one. */
export function decoderOf(
  session: DecoderLink,
): WebSocketDecoder<unknown, unknown> | undefined {
  return decoders.get(session);
}

function ignore(): void {}
