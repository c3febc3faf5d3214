// Package-internal: the close-code and close-reason mapping, what a
// session's close reason (and the error behind it) tells a WebSocket peer in
// its close frame.
import { Refusal } from "../errors.ts";
import { CloseReason } from "../close_reason.ts";

// What a session's close tells a WebSocket peer: a code (RFC 6455 section
// 7.4) and, always, the reason. A Refusal carries its own code and reason.
export function closeFor(reason: string, error: unknown): [number, string] {
  if (error instanceof Refusal) return [error.code, error.reason];
  // A WebSocket error says which rule the peer broke; the session's own
  // reason ("decode error") only says which kind.
  const detail = (error as { closeReason?: unknown } | undefined)
    ?.closeReason;
  return [
    closeCodeFor(reason, error),
    typeof detail === "string" ? detail : reason,
  ];
}

function closeCodeFor(reason: string, error: unknown): number {
  const fromError = (error as { closeCode?: unknown } | undefined)?.closeCode;
  if (typeof fromError === "number") return fromError;
  switch (reason) {
    case CloseReason.ServerShutdown:
    case CloseReason.IdleTimeout:
    case CloseReason.HeartbeatTimeout:
    case CloseReason.FrameTimeout:
      return 1001;
    case CloseReason.FrameTooLarge:
      return 1009;
    case CloseReason.DecodeError:
      return 1007;
    // The peer's input ended inside a frame: a protocol error, told to a
    // half-closed peer that may still read (the connection's own code,
    // recorded by peerCloseCode(), is 1006).
    case CloseReason.TruncatedFrame:
      return 1002;
    case CloseReason.SlowConsumer:
    case CloseReason.Flood:
      return 1008;
    case CloseReason.Error:
      return 1011;
    // HTTP 401 and 408 in the private range, as graphql-ws does: 1008 would
    // not tell a refusal from a slow consumer.
    case CloseReason.Unauthorized:
      return 4401;
    case CloseReason.AuthTimeout:
      return 4408;
    default:
      return 1000;
  }
}
