// Autobahn|Testsuite family 9 (limits and performance), ported as a bounded
// benchmark (issue 19 section 3): large text and binary messages (9.1,
// 9.2), a 4 MiB message in fragments of many sizes (9.3, 9.4), a 1 MiB
// message sent in small chops (9.5, 9.6) and sequential round trips of
// small messages (9.7, 9.8), against listen({ transport: "websocket" })
// with a webSocketMessages() echo and maxMessageBytes raised to 16 MiB.
// Every echo must be identical; the times are printed, not asserted
// (Autobahn reports them as information too).
//
// Bounds, where Autobahn goes further: 9.3/9.4 skip the 64-byte fragments
// (65,536 frames) and 9.5/9.6 use chops of 256 bytes and up (Autobahn: 64
// and 128 too). 9.7/9.8 do Autobahn's 1,000 sequential round trips. Beyond
// Autobahn: a message one byte over the limit fails with 1009.
import assert from "node:assert/strict";
import {
  assertFailed,
  autobahnServer,
  closeNormally,
  concat,
  frame,
  Op,
  pattern,
  Peer,
} from "./_autobahn.ts";

const LIMIT = 16 << 20;
const decoder = new TextDecoder();

function ms(start: number): string {
  return `${(performance.now() - start).toFixed(1)} ms`;
}

function assertEcho(peer: Peer, opcode: number, payload: Uint8Array): void {
  const [echo] = peer.messages;
  if (opcode === Op.text) {
    assert.equal(typeof echo, "string");
    assert.ok(echo === decoder.decode(payload), "the text echo is identical");
  } else {
    assert.ok(echo instanceof Uint8Array);
    assert.equal(echo.length, payload.length);
    assert.ok(
      echo.every((b, i) => b === payload[i]),
      "the binary echo is identical",
    );
  }
}

Deno.test("autobahn 9: large messages and many fragments (times printed)", async (t) => {
  await using server = autobahnServer(LIMIT);
  const kinds = [[Op.text, "text"], [Op.binary, "binary"]] as const;

  for (const [family, [opcode, name]] of kinds.entries()) {
    const sizes = [64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 16 << 20];
    for (const [i, size] of sizes.entries()) {
      await t.step(
        `9.${family + 1}.${i + 1}: ${name} message of ${size >> 10} KiB`,
        async () => {
          const payload = pattern(size, opcode === Op.text);
          const peer = await Peer.open(server);
          const start = performance.now();
          await peer.sendFrame(opcode, payload);
          assert.ok(await peer.count("message", 1, 20_000), "the echo arrives");
          console.log(`    round trip ${ms(start)}`);
          assertEcho(peer, opcode, payload);
          await closeNormally(peer);
        },
      );
    }
  }

  for (const [family, [opcode, name]] of kinds.entries()) {
    const fragments = [256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10];
    fragments.push(1 << 20, 4 << 20);
    for (const [i, fragment] of fragments.entries()) {
      await t.step(
        `9.${family + 3}.${i + 2}: 4 MiB ${name} message in ${
          fragment >> 10 || fragment + " B"
        }${fragment >= 1024 ? " KiB" : ""} fragments`,
        async () => {
          const size = 4 << 20;
          const payload = pattern(size, opcode === Op.text);
          const frames: Uint8Array[] = [];
          for (let at = 0; at < size; at += fragment) {
            frames.push(
              frame(
                at === 0 ? opcode : Op.continuation,
                payload.subarray(at, at + fragment),
                { fin: at + fragment >= size },
              ),
            );
          }
          const wire = concat(frames);
          const peer = await Peer.open(server);
          const start = performance.now();
          await peer.send(wire);
          assert.ok(await peer.count("message", 1, 20_000), "the echo arrives");
          console.log(`    ${frames.length} frames, round trip ${ms(start)}`);
          assertEcho(peer, opcode, payload);
          await closeNormally(peer);
        },
      );
    }
  }

  for (const [family, [opcode, name]] of kinds.entries()) {
    for (const [i, chop] of [256, 1024, 4096].entries()) {
      await t.step(
        `9.${family + 5}.${i + 3}: 1 MiB ${name} message in chops of ${chop}`,
        async () => {
          const payload = pattern(1 << 20, opcode === Op.text);
          const peer = await Peer.open(server);
          const start = performance.now();
          await peer.sendChopped(frame(opcode, payload), chop);
          assert.ok(await peer.count("message", 1, 20_000), "the echo arrives");
          console.log(`    round trip ${ms(start)}`);
          assertEcho(peer, opcode, payload);
          await closeNormally(peer);
        },
      );
    }
  }

  for (const [family, [opcode, name]] of kinds.entries()) {
    const sizes = [0, 16, 64, 256, 1024, 4096];
    for (const [i, size] of sizes.entries()) {
      await t.step(
        `9.${family + 7}.${i + 1}: 1000 ${name} round trips of ${size} bytes`,
        async () => {
          const payload = pattern(size, opcode === Op.text);
          const bytes = frame(opcode, payload);
          const peer = await Peer.open(server);
          const start = performance.now();
          for (let n = 1; n <= 1000; n++) {
            await peer.send(bytes);
            assert.ok(await peer.count("message", n), `echo ${n} arrives`);
          }
          console.log(`    ${ms(start)}`);
          assert.equal(peer.messages.length, 1000);
          assertEcho(peer, opcode, payload);
          await closeNormally(peer);
        },
      );
    }
  }

  await t.step(
    "a message one byte over maxMessageBytes fails (1009)",
    async () => {
      const peer = await Peer.open(server);
      await peer.sendFrame(Op.binary, pattern(1 << 20), { fin: false });
      await peer.sendFrame(Op.continuation, pattern(LIMIT - (1 << 20) + 1));
      await assertFailed(peer, 1009);
      assert.deepEqual(peer.messages, []);
    },
  );
});
