// Issue 19 §4: a quiet session waits for its peer in a tiny read buffer (a
// pending read pins its buffer, and a gateway may hold a million quiet
// sessions); a busy one keeps its working buffer between reads. The
// session's connection is a real loopback socket whose read() is watched.
import assert from "node:assert/strict";
import { lines, Session } from "../../mod.ts";
import { dial } from "../_server.ts";
import { delay, until, utf8, within, writeAll } from "../_util.ts";
import { parts } from "../../src/session/_internals.ts";
import { producerContext } from "../../src/session/_flow_control.ts";
import { LivenessTracker } from "../../src/session/_liveness_tracker.ts";
import type { SessionOptions } from "../../src/session/session.ts";
import {
  QUICK_READS,
  READ_BUFFER_IDLE,
  READ_BUFFER_MIN,
} from "../../src/defaults.ts";

/** A real connection whose read() calls report their buffer's size. */
function watched(conn: Deno.Conn, sizes: number[]): Deno.Conn {
  return new Proxy(conn, {
    get(target, key) {
      if (key === "read") {
        return (buffer: Uint8Array) => {
          sizes.push(buffer.length);
          return target.read(buffer);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function watchedPair(
  onLine: (line: string) => void,
  options: Partial<SessionOptions<unknown, string, string>> = {},
): Promise<
  {
    session: Session<unknown, string, string>;
    peer: Deno.TcpConn;
    sizes: number[];
  } & AsyncDisposable
> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const peer = await dial(listener.addr.port);
  const sizes: number[] = [];
  const session = new Session(
    watched(await listener.accept(), sizes),
    {
      codec: lines(),
      onMessage: (_session, line) => onLine(line),
      ...options,
    },
  );
  return {
    session,
    peer,
    sizes,
    async [Symbol.asyncDispose]() {
      try {
        peer.close();
      } catch { /* closed by the test */ }
      await session.close();
    },
  };
}

Deno.test("a new session waits for its peer in the idle read buffer", async () => {
  await using pair = await watchedPair(() => {});
  await within(until(() => pair.sizes.length > 0), 2000, "the first read");
  assert.equal(pair.sizes[0], READ_BUFFER_IDLE);
});

Deno.test("a quiet session goes back to the idle buffer after a long message", async () => {
  const got: string[] = [];
  await using pair = await watchedPair((line) => got.push(line));
  await within(until(() => pair.sizes.length > 0), 2000, "the first read");
  // Longer than the idle buffer: it fills that, then a working buffer.
  const long = "x".repeat(READ_BUFFER_IDLE * 3);
  await writeAll(pair.peer, utf8(`${long}\n`));
  await within(until(() => got.length === 1), 2000, "the long line");
  assert.equal(got[0], long);
  await within(
    until(() =>
      pair.sizes.at(-1) === READ_BUFFER_IDLE && pair.sizes.length > 2
    ),
    2000,
    "the next read",
  );
  assert.ok(pair.sizes.includes(READ_BUFFER_MIN), `${pair.sizes}`);
  // Waiting again, in the idle buffer.
  assert.equal(pair.sizes.at(-1), READ_BUFFER_IDLE);
});

Deno.test("a busy session keeps its working buffer between reads", async () => {
  const got: string[] = [];
  await using pair = await watchedPair((line) => got.push(line));
  await within(until(() => pair.sizes.length > 0), 2000, "the first read");
  const line = "y".repeat(READ_BUFFER_IDLE * 2);
  // Each message is read, one after the other, as soon as it is sent.
  for (let i = 1; i <= QUICK_READS + 3; i++) {
    await writeAll(pair.peer, utf8(`${line}\n`));
    await within(until(() => got.length === i), 2000, `line ${i}`);
  }
  assert.ok(got.every((l) => l === line));
  // Busy: waiting for the next message in the working buffer, not the
  // idle one (no allocation per read).
  await within(
    until(() => pair.sizes.at(-1)! >= READ_BUFFER_MIN),
    2000,
    "a read into the working buffer",
  );
  const waitingIn = pair.sizes.length;
  await writeAll(pair.peer, utf8(`${line}\n`));
  await within(until(() => got.length === QUICK_READS + 4), 2000, "last line");
  // One read took the whole message: no idle-buffer read before it.
  assert.equal(pair.sizes[waitingIn - 1]! >= READ_BUFFER_MIN, true);
  assert.equal(pair.sizes.length, waitingIn + 1, `${pair.sizes}`);
});

Deno.test("a quiet session's handlers act on its behalf across awaits, in onOpen, onMessage and at end of input", async () => {
  // A quiet session's read loop waits outside its flow-control context (so
  // the pending read pins no context frame); its handlers must still run in
  // it, or their sends would hold back nobody.
  const seen: string[] = [];
  const check = async (
    session: Session<unknown, string, string>,
    at: string,
  ) => {
    const flow = session[parts].writer.flow;
    assert.equal(producerContext.getStore(), flow, `${at}, before an await`);
    await delay(5);
    assert.equal(producerContext.getStore(), flow, `${at}, after an await`);
    seen.push(at);
  };
  await using pair = await watchedPair(() => {}, {
    onOpen: (session) => check(session, "open"),
    onMessage: (session, line) => check(session, line),
  });
  await writeAll(pair.peer, utf8("one\n"));
  await within(until(() => seen.includes("one")), 2000, "the first line");
  // A last line without "\n", delivered when the peer half-closes.
  await writeAll(pair.peer, utf8("last"));
  await pair.peer.closeWrite();
  await within(until(() => seen.includes("last")), 2000, "the last line");
  assert.deepEqual(seen, ["open", "one", "last"]);
});

Deno.test("a session's decoder link holds no closures of its own", async () => {
  // Issue 19 §4: a quiet session holds its link for life; two closures and
  // their context were ~170 bytes of it.
  let sent = 0;
  await using pair = await watchedPair(() => {});
  const link = pair.session[parts].link;
  for (const key of Reflect.ownKeys(link)) {
    const value = (link as unknown as Record<PropertyKey, unknown>)[key];
    assert.notEqual(typeof value, "function", `own ${String(key)}`);
  }
  assert.equal(link.owner, pair.session);
  // It still works as a link: a frame goes out, close() closes.
  assert.equal(link.sendFrame(utf8("hi\n")), true);
  const buffer = new Uint8Array(16);
  while (sent < 3) {
    const n = await within(pair.peer.read(buffer), 2000, "the frame");
    if (n === null) break;
    sent += n;
  }
  assert.equal(sent, 3);
  await link.close();
  assert.equal(await pair.session.closed, "closed");
});

Deno.test("a session's liveness watch is one object (its own tracker), and lastSeen stays epoch milliseconds", async () => {
  // Issue 19 §4: the watch is its own tracker (one object per session, not
  // two); lastSeen, now kept as a small integer, reads as before.
  await using pair = await watchedPair(() => {}, { heartbeatInterval: 30 });
  const liveness = pair.session[parts].liveness;
  assert.ok(liveness instanceof LivenessTracker);
  await delay(80);
  assert.equal(pair.session.state, "open");
  // lastSeen is still epoch milliseconds.
  assert.ok(Math.abs(pair.session.lastSeen - Date.now()) < 5000);
  assert.equal(Number.isInteger(pair.session.lastSeen), true);
});

Deno.test("a session that gave its queue back while quiet sends on, its counts carried over", async () => {
  // Issue 19 §4: liveness ticks give back the outbound queue of a session
  // with nothing queued; the next send takes one again.
  // A short frame timeout: liveness ticks every 50 ms, and a silent peer
  // breaks no rule (no frame is half-sent).
  await using pair = await watchedPair(() => {}, { frameTimeout: 200 });
  const read = async (bytes: number): Promise<string> => {
    const buffer = new Uint8Array(64);
    let got = "";
    while (got.length < bytes) {
      const n = await within(pair.peer.read(buffer), 2000, "a line");
      if (n === null) break;
      got += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return got;
  };
  for (let round = 1; round <= 3; round++) {
    assert.equal(pair.session.send(`line ${round}`), true);
    assert.equal(await pair.session.flush({ timeout: 2000 }), true);
    assert.equal(await read(7), `line ${round}\n`);
    // A few ticks with nothing queued: the queue is given back.
    await delay(120);
    assert.equal(pair.session.framesOut, round);
    assert.equal(pair.session.bytesOut, 7 * round);
    assert.equal(pair.session.queuedBytes, 0);
  }
  assert.equal(pair.session.state, "open");
});
