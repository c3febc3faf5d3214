// Package-internal: every default value and built-in limit of listen(),
// connect(), sessions, codecs and the WebSocket transport, in one place, so
// that the code that applies a default, the validator that compares against
// it and the documentation can't drift apart. Options' JSDoc repeats each
// value in its @default tag (readers of the API docs need to see it): change
// both together. This file imports nothing.

// --- Where a server listens and a client connects ---

/**
 * The address `listen()` binds without `hostname`: loopback only. A server
 * started without thinking about it is not reachable from the network
 * (as Redis's protected mode, and dev servers such as Vite, do); serving
 * other machines is a choice written down as `hostname: "0.0.0.0"` (or
 * `"::"`). It also matches `connect()`, so a `listen({ port })` and a
 * `connect({ port })` meet.
 */
export const DEFAULT_LISTEN_HOSTNAME = "127.0.0.1";
/** The address `connect()` dials without `hostname`. */
export const DEFAULT_CONNECT_HOSTNAME = "127.0.0.1";
/** The port `listen()` binds without `port`: any free one. */
export const DEFAULT_PORT = 0;
/**
 * The `listen(2)` backlog. Deno's 511 overflows under a burst of thousands
 * of connections, leaving clients hung (see `TcpListenOptions.backlog`).
 */
export const DEFAULT_BACKLOG = 4096;

// --- Session: outbound budget and flow control ---

/** Outbound bytes a session may hold in memory (1 MiB). */
export const DEFAULT_OUTBOUND_BUDGET = 1048576;
/** The high-water mark, as a divisor of the outbound budget. */
export const DEFAULT_HIGH_WATER_MARK_DIVISOR = 4;
/** How long a session may hold a producer back before it is cut, in ms. */
export const DEFAULT_DRAIN_TIMEOUT = 5000;
/** How long `close()` waits for queued bytes and the peer, in ms. */
export const DEFAULT_CLOSE_TIMEOUT = 5000;
/** Whether TCP_NODELAY is set on TCP connections. */
export const DEFAULT_NO_DELAY = true;

// --- Session: liveness ---

/**
 * Idle timeout, in ms: off. A quiet peer is normal (a device gateway, a
 * chat client in a background tab); dead peers are found by
 * `heartbeatInterval`, which needs a codec with a ping, or by TCP
 * keep-alive. Cutting on silence by default would cut healthy sessions.
 */
export const DEFAULT_IDLE_TIMEOUT = 0;
/**
 * Frame timeout, in ms: 30 s from a frame's first byte to its last. A peer
 * that starts a frame and dribbles it (slowloris) holds a buffer and a slot
 * for nothing; 30 s lets a peer send a 1 MiB frame at ~35 KB/s, slower
 * than any link a socket server is expected to serve.
 */
export const DEFAULT_FRAME_TIMEOUT = 30000;
/** Heartbeat interval, in ms: off (it needs a codec with a ping). */
export const DEFAULT_HEARTBEAT_INTERVAL = 0;
/** Heartbeat intervals that may pass unanswered. */
export const DEFAULT_HEARTBEAT_MAX_MISSED = 3;
/** How long a peer has to authenticate, in ms. */
export const DEFAULT_AUTH_TIMEOUT = 10000;
/** How long `Session.request()` waits for its reply, in ms. */
export const DEFAULT_REQUEST_TIMEOUT = 10000;

// --- Session: inbound rate limits ---

/** The smallest default byte burst of `rateLimit.bytesPerSecond`. */
export const DEFAULT_MIN_BYTE_BURST = 65536;

// --- Session: read buffers ---

/**
 * What a quiet session reads into. A pending read pins its buffer for as long
 * as the peer stays silent, so a million quiet sessions hold a million of
 * these: small, yet big enough for a heartbeat reply or a short message in one
 * read.
 */
export const READ_BUFFER_IDLE = 64;
/** The size a busy session's read buffer starts at and returns to. */
export const READ_BUFFER_MIN = 512;
/** Reads that fill the buffer double it, up to this. */
export const READ_BUFFER_MAX = 65536;
/**
 * A session counts as busy, and keeps its read buffer between reads, after
 * this many reads in a row that each arrived within {@linkcode QUICK_READ_MS}
 * of being issued; otherwise, once a read has emptied the socket, it waits
 * for the next one in its {@linkcode READ_BUFFER_IDLE} buffer.
 */
export const QUICK_READS = 4;
/** See {@linkcode QUICK_READS}. */
export const QUICK_READ_MS = 1000;

// --- Server ---

/** How long `shutdown()` gives sessions to write what is queued, in ms. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 5000;

// --- Client ---

/** How long one connection attempt may take, in ms. */
export const DEFAULT_CONNECT_TIMEOUT = 10000;
/** The delay before the first reconnection, in ms. */
export const DEFAULT_RECONNECT_INITIAL_DELAY = 100;
/** The longest delay between reconnections, in ms. */
export const DEFAULT_RECONNECT_MAX_DELAY = 5000;
/** How much each reconnection delay grows. */
export const DEFAULT_RECONNECT_FACTOR = 2;
/** Random spread of each reconnection delay, as a fraction of it. */
export const DEFAULT_RECONNECT_JITTER = 0.2;
/** Failed reconnection attempts in a row before giving up. */
export const DEFAULT_RECONNECT_MAX_ATTEMPTS = Infinity;
/**
 * How long, in milliseconds, a reconnected client must stay open before its
 * backoff starts again from `initialDelay`.
 */
export const DEFAULT_RECONNECT_STABLE_AFTER = 5000;
/** Messages the send buffer keeps while reconnecting. */
export const DEFAULT_SEND_BUFFER_MESSAGES = 1024;

// --- Codecs ---

/** `lines()`: the longest line, in bytes. */
export const DEFAULT_MAX_LINE_BYTES = 65536;
/** `lengthPrefixed()`, `json()`, `microSocket()`: the largest frame (1 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 1048576;

// --- WebSocket ---

/** The largest WebSocket message accepted (1 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1048576;
/** From accepting a connection to the end of its handshake, in ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10000;
/** The largest HTTP request head, in bytes. */
export const DEFAULT_MAX_HEAD_BYTES = 8192;
/** The most HTTP request header fields. */
export const DEFAULT_MAX_HEADERS = 64;
/** Pings a peer may send per second before it is cut. */
export const DEFAULT_MAX_PINGS_PER_SECOND = 32;
/** The native adapter's `maxBufferedAmount`, in bytes. */
export const DEFAULT_MAX_BUFFERED_AMOUNT = 65536;
/**
 * permessage-deflate: payloads shorter than this many bytes go uncompressed
 * (deflate gains little on them, and each zlib call costs ~35 us).
 */
export const DEFAULT_DEFLATE_THRESHOLD = 128;
/** permessage-deflate: the zlib compression level. */
export const DEFAULT_DEFLATE_LEVEL = 6;

// Recovery (issue 17): see src/recovery/server_recovery.ts.
/** How long a detached session waits for its client, in milliseconds. */
export const DEFAULT_RECOVERY_WINDOW = 30_000;
/** How many messages a resumable session keeps of what it sent. */
export const DEFAULT_RECOVERY_MAX_MESSAGES = 1000;
/** How many bytes those messages may hold. */
export const DEFAULT_RECOVERY_MAX_BYTES = 1_048_576;
/**
 * TCP, TLS, Unix: how long a new connection may stay silent before it is
 * taken for a plain client, in milliseconds (a recovery client's hello
 * arrives right behind the handshake; see the README's Recovery section).
 */
export const DEFAULT_RECOVERY_HELLO_TIMEOUT = 20;
/** WebSocket: how long a client that asked for recovery has to say hello. */
export const DEFAULT_RECOVERY_WS_HELLO_TIMEOUT = 10_000;
