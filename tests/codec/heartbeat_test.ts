// Heartbeats for lines(), json() and lengthPrefixed(): each codec can ping
// (a configured line or JSON value, or an empty length-prefixed frame), a
// peer that answers stays, a silent one is closed with "heartbeat timeout",
// and pongs never reach handlers.
import assert from "node:assert/strict";
import {
  CloseReason,
  type Codec,
  json,
  lengthPrefixed,
  lines,
  microSocket,
} from "../../mod.ts";
import { dial, portOf, testServer } from "../_server.ts";
import { delay, readBytes, until, within } from "../_util.ts";

const text = new TextEncoder();

Deno.test("Heartbeat of each built-in codec: ping and pong bytes, recognised when decoded", () => {
  const cases: [Codec<unknown>, string, string][] = [
    [
      lines({ heartbeat: { ping: "PING", pong: "PONG" } }) as Codec<unknown>,
      "PING\n",
      "PONG\n",
    ],
    [
      json({ heartbeat: { ping: { type: "ping" }, pong: { type: "pong" } } }),
      '{"type":"ping"}\n',
      '{"type":"pong"}\n',
    ],
    [
      json({ framing: "length", heartbeat: { ping: 0, pong: 1 } }),
      "\0\0\0\x010",
      "\0\0\0\x011",
    ],
    [
      lengthPrefixed({ heartbeat: true }) as Codec<unknown>,
      "\0\0\0\0",
      "\0\0\0\0",
    ],
    [microSocket() as Codec<unknown>, "Header\0\0\0\0", "Header\0\0\0\0"],
  ];
  for (const [codec, ping, pong] of cases) {
    const heartbeat = codec.heartbeat!;
    assert.deepEqual(heartbeat.ping, text.encode(ping), codec.name);
    assert.deepEqual(heartbeat.pong, text.encode(pong), codec.name);
    const got: unknown[] = [];
    const decoder = codec.decoder();
    decoder.decode(heartbeat.ping, (m) => got.push(m));
    decoder.decode(heartbeat.pong, (m) => got.push(m));
    assert.equal(got.length, 2, codec.name);
    assert.ok(heartbeat.isPing(got[0]), `${codec.name} ping`);
    assert.ok(heartbeat.isPong(got[1]), `${codec.name} pong`);
  }
  // Ordinary messages are neither.
  const jsonBeat = json({
    heartbeat: { ping: { type: "ping" }, pong: { type: "pong" } },
  });
  const other: unknown[] = [];
  jsonBeat.decoder().decode(
    text.encode('{"type": "ping"}\n{"type":"chat"}\n'),
    (m) => other.push(m),
  );
  assert.ok(
    other.every((m) =>
      !jsonBeat.heartbeat!.isPing(m) && !jsonBeat.heartbeat!.isPong(m)
    ),
  );
  assert.equal(lines().heartbeat, undefined);
  assert.equal(json().heartbeat, undefined);
  assert.equal(lengthPrefixed().heartbeat, undefined);
});

Deno.test("Heartbeat options are checked when the codec is made", () => {
  assert.throws(
    () => lines({ heartbeat: { ping: "a\nb", pong: "x" } }),
    TypeError,
  );
  assert.throws(
    () => lines({ heartbeat: { ping: 1 as unknown as string, pong: "x" } }),
    TypeError,
  );
  assert.throws(
    () => lines({ maxLineBytes: 2, heartbeat: { ping: "PING", pong: "P" } }),
    RangeError,
  );
  assert.throws(
    () => json({ heartbeat: { ping: undefined, pong: 1 } }),
    TypeError,
  );
  assert.throws(
    () => lengthPrefixed({ heartbeat: "yes" as unknown as boolean }),
    TypeError,
  );
});

/**
 * Runs a server with `codec` and a 100 ms heartbeat, connects an answering
 * peer and a silent one, and checks that only the silent one is closed.
 */
async function heartbeatOverSockets(
  codec: Codec<unknown>,
): Promise<void> {
  const ping = codec.heartbeat!.ping;
  const pong = codec.heartbeat!.pong;
  const seen: unknown[] = [];
  await using server = testServer({
    codec,
    heartbeatInterval: 100,
    heartbeatMaxMissed: 2,
    onMessage: (_session, message) => void seen.push(message),
  });
  const port = portOf(server.addr);
  using silent = await dial(port);
  using answering = await dial(port);
  await until(() => server.sessions.size === 2);
  const [silentSession, answeringSession] = [...server.sessions];
  // The answering peer reads each ping and answers it, for 700 ms.
  const deadline = performance.now() + 700;
  let pings = 0;
  while (performance.now() < deadline) {
    const got = await readBytes(answering, ping.length, 2000);
    assert.deepEqual(got, ping, `${codec.name} sends its ping`);
    pings++;
    await answering.write(pong);
  }
  assert.ok(pings >= 3, `${pings} pings`);
  assert.equal(
    await within(silentSession!.closed, 2000),
    CloseReason.HeartbeatTimeout,
  );
  assert.equal(answeringSession!.state, "open", codec.name);
  await delay(20);
  assert.deepEqual(seen, [], "pongs never reach onMessage");
  // The silent peer got pings, then the end of the stream.
  assert.deepEqual(await readBytes(silent, ping.length), ping);
}

Deno.test("lines({ heartbeat }) pings, keeps a peer that answers, closes one that doesn't", async () => {
  await heartbeatOverSockets(
    lines({ heartbeat: { ping: "PING", pong: "PONG" } }) as Codec<unknown>,
  );
});

Deno.test("json({ heartbeat }) pings with a JSON value, over lines and length-prefixed frames", async () => {
  const heartbeat = { ping: { type: "ping" }, pong: { type: "pong" } };
  await heartbeatOverSockets(json({ heartbeat }));
  await heartbeatOverSockets(json({ framing: "length", heartbeat }));
});

Deno.test("lengthPrefixed({ heartbeat: true }) pings with empty frames", async () => {
  await heartbeatOverSockets(
    lengthPrefixed({ heartbeat: true }) as Codec<unknown>,
  );
});
