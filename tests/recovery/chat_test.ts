// Recovery (issue 17) in the chat: a terminal client with recovery loses its
// connection while others talk; it gets every line it missed, once, in
// order, and keeps its nick (the session went on).
import assert from "node:assert/strict";
import { connect } from "../../mod.ts";
import { chatServer } from "../../examples/chat_server.ts";
import { until, utf8 } from "../_util.ts";
import { Proxy } from "./_proxy.ts";

Deno.test("chat: a recovering client misses no line and keeps its nick", async () => {
  await using server = chatServer({ port: 0, rate: 0, recoveryWindow: 5000 });
  const port = (server.addr as Deno.NetAddr).port;
  await using proxy = new Proxy(port);
  const got: string[] = [];
  const client = await connect({
    port: proxy.port,
    recovery: true,
    onMessage: (_session, line) => void got.push(line),
  });
  const talker = await Deno.connect({
    hostname: "127.0.0.1",
    port,
  });
  try {
    client.send("/nick ada");
    await until(() => got.some((line) => line.includes("ada")), 3000, "nick");
    await until(() => server.sessions.size === 2, 3000, "the talker");
    const say = (n: number) => talker.write(utf8(`m${n}\n`));
    for (let n = 1; n <= 5; n++) await say(n);
    await until(() => got.some((line) => line.endsWith("m5")), 3000, "m5");
    proxy.cut([...proxy.pairs][0]!);
    for (let n = 6; n <= 40; n++) await say(n);
    await until(() => got.some((line) => line.endsWith("m40")), 5000, "m40");
    const said = got.filter((line) => /m\d+$/.test(line)).map((line) =>
      Number(line.slice(line.lastIndexOf("m") + 1))
    );
    assert.deepEqual(said, Array.from({ length: 40 }, (_, i) => i + 1));
    assert.equal(client.resumes, 1);
    client.send("/who");
    await until(
      () => got.some((line) => line.includes("ada") && line.includes("guest")),
      3000,
      "/who with ada",
    );
  } finally {
    talker.close();
    await client.close();
  }
});

Deno.test("chat: an nc-style client is unchanged by the chat's recovery", async () => {
  // Server speaks first: the welcome arrives without a hello; what it says
  // is what a chat without recovery says.
  for (const recoveryWindow of [0, 5000]) {
    await using server = chatServer({ port: 0, recoveryWindow });
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    const buffer = new Uint8Array(256);
    const n = await conn.read(buffer);
    conn.close();
    assert.match(
      new TextDecoder().decode(buffer.subarray(0, n!)),
      /^\* welcome guest\d+\n/,
    );
  }
});
