// Autobahn|Testsuite families 1-4, ported (issue 19 section 3): payload
// sizes and every frame-length encoding (1.1.x text, 1.2.x binary), pings
// and pongs (2.x), reserved bits (3.x) and reserved opcodes (4.x), against
// listen({ transport: "websocket" }) with a webSocketMessages() echo. Each
// step is named after its Autobahn case and asserts the case's OK outcome
// (Autobahn's strict expectation). The fuzzing peer (./_autobahn.ts) also
// checks every frame the server sends: no reserved bits, no mask, the
// minimal length encoding, valid UTF-8 in text.
//
// Divergences from Autobahn's strict expectation: none in these families.
// RSV1 is tested without permessage-deflate negotiated (the upgrade here
// offers no extension), so it must stay a 1002 once deflate lands.
// Beyond Autobahn: sizes up to 16 MiB (1.x stops at 65536; 9.x covers the
// large ones), each also sent in chops of 997 and 4093 octets, and frames
// with a non-minimal length encoding (accepted: RFC 6455 asks minimal
// lengths of senders only, and Autobahn never sends such frames).
import assert from "node:assert/strict";
import {
  assertFailed,
  autobahnServer,
  closeBody,
  closeNormally,
  concat,
  frame,
  Op,
  pattern,
  Peer,
} from "./_autobahn.ts";

const decoder = new TextDecoder();
const SIZES = [0, 125, 126, 127, 128, 65535, 65536];
const LARGE = [1 << 20, 16 << 20];

/** Sends one message, expects it echoed identically, closes normally. */
async function echoCase(
  server: { readonly addr: Deno.NetAddr },
  opcode: number,
  payload: Uint8Array,
  chop?: number,
  spec: Parameters<typeof frame>[2] = {},
): Promise<void> {
  const peer = await Peer.open(server);
  const bytes = frame(opcode, payload, spec);
  if (chop === undefined) await peer.send(bytes);
  else await peer.sendChopped(bytes, chop);
  assert.ok(await peer.count("message", 1, 10_000), "the echo arrives");
  const [echo] = peer.messages;
  if (opcode === Op.text) {
    assert.equal(typeof echo, "string");
    assert.equal(echo, decoder.decode(payload));
  } else {
    assert.ok(echo instanceof Uint8Array);
    assert.deepEqual(echo, payload);
  }
  const [f] = peer.frames;
  const n = payload.length;
  assert.equal(f!.opcode, opcode);
  assert.equal(f!.lengthBytes, n < 126 ? 0 : n < 65536 ? 2 : 8);
  await closeNormally(peer);
}

Deno.test("autobahn 1: text and binary payloads of every length encoding echo as sent", async (t) => {
  await using server = autobahnServer(32 << 20);
  for (const [family, opcode] of [[1, Op.text], [2, Op.binary]] as const) {
    const name = opcode === Op.text ? "text" : "binary";
    for (const [i, size] of SIZES.entries()) {
      await t.step(
        `1.${family}.${i + 1}: ${name} of ${size} bytes`,
        () => echoCase(server, opcode, pattern(size, opcode === Op.text)),
      );
    }
    await t.step(
      `1.${family}.8: ${name} of 65536 bytes in chops of 997`,
      () => echoCase(server, opcode, pattern(65536, opcode === Op.text), 997),
    );
    for (const size of SIZES) {
      await t.step(`${name} of ${size} bytes in chops of 1 and 3`, async () => {
        if (size > 256) return; // byte-wise sends of large frames are slow
        await echoCase(server, opcode, pattern(size, opcode === Op.text), 1);
        await echoCase(server, opcode, pattern(size, opcode === Op.text), 3);
      });
    }
    for (const size of LARGE) {
      await t.step(
        `${name} of ${size >> 20} MiB, whole and in chops of 4093`,
        async () => {
          const payload = pattern(size, opcode === Op.text);
          await echoCase(server, opcode, payload);
          await echoCase(server, opcode, payload, 4093);
        },
      );
    }
    await t.step(
      `${name} with non-minimal length encodings is accepted`,
      async () => {
        await echoCase(server, opcode, pattern(5, true), undefined, {
          lengthBytes: 2,
        });
        await echoCase(server, opcode, pattern(125, true), undefined, {
          lengthBytes: 8,
        });
        await echoCase(server, opcode, pattern(300, true), undefined, {
          lengthBytes: 8,
        });
      },
    );
  }
});

Deno.test("autobahn 2: pings are answered with their payload, pongs ignored, control payloads bounded", async (t) => {
  await using server = autobahnServer();
  const pingCase = async (
    payload: Uint8Array | string,
    chop?: number,
  ): Promise<void> => {
    const peer = await Peer.open(server);
    const bytes = frame(Op.ping, payload);
    if (chop === undefined) await peer.send(bytes);
    else await peer.sendChopped(bytes, chop, 1);
    assert.ok(await peer.count("pong", 1), "the pong arrives");
    const expected = typeof payload === "string"
      ? new TextEncoder().encode(payload)
      : payload;
    assert.deepEqual(peer.pongs, [expected]);
    await closeNormally(peer);
  };
  await t.step("2.1: ping without payload", () => pingCase(""));
  await t.step(
    "2.2: ping with a small text payload",
    () => pingCase("Hello, world!"),
  );
  await t.step(
    "2.3: ping with a small binary payload",
    () =>
      pingCase(
        new Uint8Array([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]),
      ),
  );
  await t.step(
    "2.4: ping with a 125-byte binary payload",
    () => pingCase(pattern(125)),
  );
  await t.step(
    "2.5: ping with a 126-byte payload fails with 1002",
    async () => {
      const peer = await Peer.open(server);
      await peer.send(frame(Op.ping, pattern(126)));
      await assertFailed(peer, 1002);
      assert.deepEqual(peer.pongs, []);
    },
  );
  await t.step(
    "2.6: ping with a 125-byte payload, sent octet-wise",
    () => pingCase(pattern(125), 1),
  );
  await t.step("2.7: unsolicited pong without payload is ignored", async () => {
    const peer = await Peer.open(server);
    await peer.sendFrame(Op.pong);
    await closeNormally(peer);
    assert.equal(peer.events.length, 1); // only the close
  });
  await t.step("2.8: unsolicited pong with payload is ignored", async () => {
    const peer = await Peer.open(server);
    await peer.sendFrame(Op.pong, "unsolicited pong payload");
    await closeNormally(peer);
    assert.equal(peer.events.length, 1);
  });
  await t.step(
    "2.9: unsolicited pong, then ping: only the ping is answered",
    async () => {
      const peer = await Peer.open(server);
      await peer.sendFrame(Op.pong, "unsolicited pong payload");
      await peer.sendFrame(Op.ping, "ping payload");
      assert.ok(await peer.count("pong", 1));
      await closeNormally(peer);
      assert.deepEqual(peer.pongs.map((p) => decoder.decode(p)), [
        "ping payload",
      ]);
    },
  );
  for (const [id, chop] of [["2.10", undefined], ["2.11", 1]] as const) {
    await t.step(
      `${id}: 10 pings${chop ? " octet-wise" : ""}: 10 pongs in order`,
      async () => {
        const peer = await Peer.open(server);
        const names = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
        for (const name of names) {
          const bytes = frame(Op.ping, name);
          if (chop === undefined) await peer.send(bytes);
          else await peer.sendChopped(bytes, chop, 1);
        }
        assert.ok(await peer.count("pong", 10), "10 pongs arrive");
        assert.deepEqual(peer.pongs.map((p) => decoder.decode(p)), names);
        await closeNormally(peer);
      },
    );
  }
  await t.step(
    "beyond Autobahn: echoes and pongs keep the order of the requests",
    async () => {
      const peer = await Peer.open(server);
      await peer.send(concat([
        frame(Op.text, "a"),
        frame(Op.ping, "p"),
        frame(Op.binary, pattern(3)),
        frame(Op.ping, "q"),
      ]));
      assert.ok(await peer.count("pong", 2));
      assert.deepEqual(peer.events.map((e) => e.kind), [
        "message",
        "pong",
        "message",
        "pong",
      ]);
      await closeNormally(peer);
    },
  );
  await t.step(
    "a 125-byte close payload is accepted, 126 fails (1002)",
    async () => {
      const ok = await Peer.open(server);
      await ok.sendFrame(Op.close, closeBody(1000, "x".repeat(123)));
      assert.ok(await ok.finish(), "the server drops TCP");
      assert.equal(ok.close?.code, 1000);
      const bad = await Peer.open(server);
      await bad.sendFrame(Op.close, closeBody(1000, "x".repeat(124)));
      await assertFailed(bad, 1002);
    },
  );
  await t.step("a ping after the peer's close is not answered", async () => {
    const peer = await Peer.open(server);
    await peer.send(
      new Uint8Array([...frame(Op.close, closeBody(1000)), ...frame(Op.ping)]),
    );
    assert.ok(await peer.finish());
    assert.deepEqual(peer.pongs, []);
    assert.equal(peer.close?.code, 1000);
  });
});

// Autobahn sends a small text, then the bad frame, then a ping: the echo of
// the text must come first, then a 1002 close, and no pong.
type Send = "whole" | "frame-wise" | "octet-wise";

async function badFrameAfterEcho(
  server: { readonly addr: Deno.NetAddr },
  bad: Uint8Array,
  send: Send,
): Promise<void> {
  const peer = await Peer.open(server);
  const frames = [frame(Op.text, "Hello, World!"), bad, frame(Op.ping)];
  if (send === "whole") {
    await peer.send(new Uint8Array(frames.flatMap((f) => [...f])));
  } else {
    for (const f of frames) {
      if (send === "frame-wise") await peer.send(f);
      else await peer.sendChopped(f, 1, 1);
    }
  }
  await assertFailed(peer, 1002);
  assert.deepEqual(peer.messages, ["Hello, World!"]);
  assert.deepEqual(peer.pongs, []);
}

Deno.test("autobahn 3: reserved bits fail the connection with 1002, after echoing what came before", async (t) => {
  await using server = autobahnServer();
  await t.step("3.1: small text with RSV = 1", async () => {
    const peer = await Peer.open(server);
    await peer.sendFrame(Op.text, "Hello, World!", { rsv: 1 });
    await assertFailed(peer, 1002);
    assert.deepEqual(peer.messages, []);
  });
  const sends: [string, number, Send][] = [
    ["3.2", 2, "whole"],
    ["3.3", 3, "frame-wise"],
    ["3.4", 4, "octet-wise"],
  ];
  for (const [id, rsv, send] of sends) {
    await t.step(
      `${id}: text, text with RSV = ${rsv}, ping (${send})`,
      () =>
        badFrameAfterEcho(
          server,
          frame(Op.text, "Hello, World!", { rsv }),
          send,
        ),
    );
  }
  await t.step(
    "RSV1 alone (4) on text, without a negotiated extension",
    () => badFrameAfterEcho(server, frame(Op.text, "x", { rsv: 4 }), "whole"),
  );
  const controls: [string, number, number, Uint8Array][] = [
    ["3.5", Op.binary, 5, pattern(8)],
    ["3.6", Op.ping, 6, new TextEncoder().encode("Hello, World!")],
    ["3.7", Op.close, 7, closeBody(1000)],
  ];
  for (const [id, opcode, rsv, payload] of controls) {
    await t.step(`${id}: opcode ${opcode} with RSV = ${rsv}`, async () => {
      const peer = await Peer.open(server);
      await peer.sendFrame(opcode, payload, { rsv });
      await assertFailed(peer, 1002);
      assert.deepEqual(peer.messages, []);
      assert.deepEqual(peer.pongs, []);
    });
  }
  for (const rsv of [1, 2, 3, 4, 5, 6, 7]) {
    await t.step(`RSV = ${rsv} on a continuation frame`, async () => {
      const peer = await Peer.open(server);
      await peer.sendFrame(Op.text, "frag", { fin: false });
      await peer.sendFrame(Op.continuation, "ment", { rsv });
      await assertFailed(peer, 1002);
      assert.deepEqual(peer.messages, []);
    });
  }
});

Deno.test("autobahn 4: reserved opcodes fail the connection with 1002", async (t) => {
  await using server = autobahnServer();
  const cases: [string, number, boolean, Send][] = [
    ["4.1.1", 3, false, "whole"],
    ["4.1.2", 4, true, "whole"],
    ["4.1.3", 5, false, "frame-wise"],
    ["4.1.4", 6, true, "frame-wise"],
    ["4.1.5", 7, true, "octet-wise"],
    ["4.2.1", 11, false, "whole"],
    ["4.2.2", 12, true, "whole"],
    ["4.2.3", 13, false, "frame-wise"],
    ["4.2.4", 14, true, "frame-wise"],
    ["4.2.5", 15, true, "octet-wise"],
  ];
  for (const [id, opcode, withPayload, send] of cases) {
    const payload = withPayload ? "reserved opcode payload" : "";
    await t.step(
      `${id}: opcode ${opcode}${withPayload ? " with payload" : ""}, alone`,
      async () => {
        const peer = await Peer.open(server);
        await peer.sendFrame(opcode, payload);
        await assertFailed(peer, 1002);
        assert.deepEqual(peer.messages, []);
      },
    );
    await t.step(
      `${id}: text, opcode ${opcode}, ping (${send})`,
      () => badFrameAfterEcho(server, frame(opcode, payload), send),
    );
  }
});

Deno.test("beyond autobahn: framing rules a fuzzing client never breaks", async (t) => {
  await using server = autobahnServer();
  await t.step("an unmasked client frame fails (1002)", async () => {
    const peer = await Peer.open(server);
    await peer.sendFrame(Op.text, "Hello", { mask: false });
    await assertFailed(peer, 1002);
    assert.deepEqual(peer.messages, []);
  });
  await t.step(
    "a 64-bit length with the top bit set fails (1002)",
    async () => {
      const peer = await Peer.open(server);
      const bytes = frame(Op.binary, pattern(4), { lengthBytes: 8 });
      bytes[2]! |= 0x80;
      await peer.send(bytes);
      await assertFailed(peer, 1002);
    },
  );
  await t.step(
    "a 64-bit length over the limit fails (1009) before any payload",
    async () => {
      const peer = await Peer.open(server);
      const bytes = frame(Op.binary, new Uint8Array(0), { lengthBytes: 8 });
      new DataView(bytes.buffer).setBigUint64(2, 1n << 40n);
      await peer.send(bytes);
      await assertFailed(peer, 1009);
    },
  );
  await t.step(
    "a peer that never answers the server's close is dropped",
    async () => {
      const peer = await Peer.open(server);
      peer.closeSent = true; // so the peer does not answer
      await peer.sendFrame(Op.text, "x", { rsv: 2 });
      await assertFailed(peer, 1002);
    },
  );
  await t.step("a ping using a 16-bit length field fails (1002)", async () => {
    const peer = await Peer.open(server);
    await peer.sendFrame(Op.ping, "x", { lengthBytes: 2 });
    await assertFailed(peer, 1002);
    assert.deepEqual(peer.pongs, []);
  });
});
