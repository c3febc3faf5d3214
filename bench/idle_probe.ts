// Issue 19 §4: where an idle session's bytes go. A diagnostic, not a bench
// row: it splits the per-connection cost of N quiet loopback connections
// into V8 heap (JS objects, measured after forced GCs, the last one
// memory-reducing: see measure()), external memory
// (ArrayBuffer backing stores) and the rest of RSS (Deno's native side:
// resource table, tokio registration, each pending read op's future, and
// the allocator's overhead), for a ladder of servers from "accept and hold"
// to microsocket with a heartbeat.
//
//   deno run -A bench/idle_probe.ts [N=10000] [variant,...] [--snapshot=DIR]
//       [--v8=--max-semi-space-size=1]
//
// Variants (each server in its own process, started with --expose-gc):
//   hold      accept and keep the Deno.Conn; no read pending
//   read16    one pending conn.read() per connection into a 16-byte buffer
//   read64    the same with 64 bytes (microsocket's idle read buffer)
//   read4k    the same with 4 KiB (the bench's floor)
//   micro     microsocket, lengthPrefixed echo, defaults (bench "microsocket")
//   micro_hb  the same with a 30 s heartbeat (bench "microsocket_hb")
//   micro_nagle  micro without setNoDelay(true)
//   ws_read16 WebSocket by hand on Deno.listen: the opening handshake, then
//             one pending conn.read() into a 16-byte buffer (the WebSocket
//             floor: what our transport does, minus the session)
//   ws_native Deno.serve + Deno.upgradeWebSocket
//   ws_hb     microsocket, listen({ transport: "websocket" }), lines, with a
//             30 s heartbeat (bench/servers/ws_microsocket.ts heartbeat)
// Each connection makes one echo round trip (a 4-byte length + 8 bytes), or
// for ws_* its opening handshake, and then stays silent, like the bench's
// idle rows. --snapshot writes a heap
// snapshot of each server once its connections are idle (two sizes, diffed,
// give the objects each session holds). --v8 passes V8 flags to the servers:
// with --max-semi-space-size=1 the young generation cannot grow, which
// removes from the figures the tens of MB of it that an accept burst leaves
// committed (the "heap unused" column) and that a million sessions would
// amortize. The last column is the RSS slope over the last two thirds of
// the connections.
import { lengthPrefixed, listen } from "../mod.ts";

// deno-lint-ignore no-explicit-any
const gc = (globalThis as any).gc as (() => void) | undefined;

interface Memory {
  /** RSS before any forced GC. */
  rawRss: number;
  rss: number;
  heap: number;
  heapTotal: number;
  external: number;
}

function measure(): Memory {
  const rawRss = Deno.memoryUsage().rss;
  for (let i = 0; i < 4; i++) gc?.();
  // A memory-reducing GC also shrinks the young generation and gives its
  // pages back (plain gc() leaves it at the size the burst grew it to).
  (gc as ((options: object) => void) | undefined)?.({
    type: "major",
    execution: "sync",
    flavor: "last-resort",
  });
  const m = Deno.memoryUsage();
  return {
    rawRss,
    rss: m.rss,
    heap: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
  };
}

async function server(variant: string, snapshot: string | undefined) {
  const held: unknown[] = [];
  let port: number;
  if (variant === "ws_hb") {
    const s = listen({
      transport: "websocket",
      hostname: "127.0.0.1",
      port: 0,
      heartbeatInterval: 30_000,
      onMessage: (session, line): void => void session.send(line),
    });
    port = s.addr.port;
  } else if (variant === "ws_native") {
    const s = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => {
        const { socket, response } = Deno.upgradeWebSocket(request);
        socket.onmessage = (event) => socket.send(event.data);
        return response;
      },
    );
    port = s.addr.port;
  } else if (variant === "ws_read16") {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = (listener.addr as Deno.NetAddr).port;
    (async () => {
      for await (const conn of listener) void wsByHand(conn);
    })();
  } else if (variant.startsWith("micro")) {
    const heartbeat = variant === "micro_hb";
    const s = listen({
      hostname: "127.0.0.1",
      port: 0,
      codec: lengthPrefixed({ heartbeat }),
      heartbeatInterval: heartbeat ? 30_000 : 0,
      noDelay: variant !== "micro_nagle",
      onMessage: (session, frame): void => void session.send(frame),
    });
    port = s.addr.port;
  } else {
    const size = { hold: 0, read16: 16, read64: 64, read4k: 4096 }[variant];
    if (size === undefined) throw new Error(`Unknown variant ${variant}`);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    port = (listener.addr as Deno.NetAddr).port;
    (async () => {
      for await (const conn of listener) {
        if (size === 0) {
          held.push(conn);
          // Answers the round trip once, then holds the connection unread.
          const buffer = new Uint8Array(64);
          conn.read(buffer).then((n) => conn.write(buffer.subarray(0, n!)));
          continue;
        }
        (async () => {
          const buffer = new Uint8Array(size);
          while (true) {
            const n = await conn.read(buffer).catch(() => null);
            if (n === null) return conn.close();
            await conn.write(buffer.subarray(0, n));
          }
        })();
      }
    })();
  }
  const before = measure();
  console.log(`listening ${port}`);
  for await (
    const line of Deno.stdin.readable.pipeThrough(new TextDecoderStream())
  ) {
    if (!line.includes("measure")) continue;
    await new Promise((r) => setTimeout(r, 500));
    const after = measure();
    if (snapshot !== undefined) {
      const v8 = await import("node:v8");
      v8.writeHeapSnapshot(
        `${snapshot}/${variant}-${Deno.args[3]}.heapsnapshot`,
      );
    }
    console.log(JSON.stringify({ before, after }));
  }
  Deno.exit(0);
}

const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// The WebSocket floor: the opening handshake by hand, then one pending read
// into a 16-byte buffer (frames are not parsed: the peer stays silent).
async function wsByHand(conn: Deno.Conn): Promise<void> {
  let head = "";
  {
    const buffer = new Uint8Array(1024);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return conn.close();
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
  }
  const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
  const digest = await crypto.subtle.digest(
    "SHA-1",
    new TextEncoder().encode(key + WS_GUID),
  );
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  await conn.write(
    new TextEncoder().encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ),
  );
  const buffer = new Uint8Array(16);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return conn.close();
  }
}

const HANDSHAKE = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    "Sec-WebSocket-Version: 13\r\n\r\n",
);

async function driver() {
  const args = Deno.args.filter((a) => !a.startsWith("--"));
  const snapshot = Deno.args.find((a) => a.startsWith("--snapshot="))
    ?.slice("--snapshot=".length);
  const n = Number(args[0] ?? 10_000);
  // Extra V8 flags for the servers, e.g. --v8=--max-semi-space-size=1.
  const v8Flags = Deno.args.filter((a) => a.startsWith("--v8="))
    .map((a) => "," + a.slice("--v8=".length)).join("");
  const variants = (args[1] ?? "hold,read16,read64,read4k,micro,micro_hb")
    .split(",");
  const rows: string[] = [];
  for (const variant of variants) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--v8-flags=--expose-gc${v8Flags}`,
        new URL(import.meta.url).pathname,
        "server",
        variant,
        ...(snapshot === undefined ? [] : [snapshot, String(n)]),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const nextLine = async (): Promise<string> => {
      while (!text.includes("\n")) {
        const { value, done } = await out.read();
        if (done) throw new Error("Server exited");
        text += value;
      }
      const i = text.indexOf("\n");
      const line = text.slice(0, i);
      text = text.slice(i + 1);
      return line;
    };
    const port = Number((await nextLine()).split(" ")[1]);
    const conns: Deno.Conn[] = [];
    const frame = new Uint8Array([0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    const stdin = child.stdin.getWriter();
    const third = Math.floor(n / 3);
    let atThird: Memory | undefined;
    for (let i = 0; i < n; i += 128) {
      if (atThird === undefined && i >= third) {
        await stdin.write(new TextEncoder().encode("measure third\n"));
        atThird = JSON.parse(await nextLine()).after;
      }
      await Promise.all(
        Array.from({ length: Math.min(128, n - i) }, async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          conns.push(conn);
          if (variant.startsWith("ws_")) {
            await conn.write(HANDSHAKE);
            const buffer = new Uint8Array(1024);
            let head = "";
            while (!head.includes("\r\n\r\n")) {
              const r = await conn.read(buffer);
              if (r === null) throw new Error("Server closed");
              head += new TextDecoder().decode(buffer.subarray(0, r));
            }
            if (!head.startsWith("HTTP/1.1 101")) {
              throw new Error(`No upgrade: ${head.split("\r\n")[0]}`);
            }
            return;
          }
          await conn.write(frame);
          const reply = new Uint8Array(64);
          let got = 0;
          while (got < frame.length) {
            const r = await conn.read(reply.subarray(got));
            if (r === null) throw new Error("Server closed");
            got += r;
          }
        }),
      );
    }
    await stdin.write(new TextEncoder().encode("measure\n"));
    const { before, after } = JSON.parse(await nextLine());
    const per = (key: keyof Memory) => (after[key] - before[key]) / n / 1024;
    const raw = per("rawRss");
    const rss = per("rss"), heap = per("heap"), external = per("external");
    const heapTotal = per("heapTotal");
    // The slope over the last two thirds: what one more session costs, once
    // V8's young generation has grown (a one-off of tens of MB).
    const slope = (after.rss - atThird!.rss) / (n - third) / 1024;
    rows.push(
      `| ${variant} | ${raw.toFixed(2)} | ${rss.toFixed(2)} | ${
        heap.toFixed(2)
      } | ${(heapTotal - heap).toFixed(2)} | ${external.toFixed(2)} | ${
        (rss - heapTotal - external).toFixed(2)
      } | ${slope.toFixed(2)} |`,
    );
    console.error(rows.at(-1));
    for (const conn of conns) conn.close();
    await stdin.close();
    child.kill();
    await child.status;
    await out.cancel().catch(() => {});
  }
  console.log(
    `| variant (N=${n}) | RSS KB/conn, no GC | RSS KB/conn after GC | ` +
      `V8 heap used | V8 heap unused | external | rest (native) | ` +
      `RSS slope after GC, last 2/3 |`,
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
  for (const row of rows) console.log(row);
}

const role = Deno.args[0];
if (role === "server") await server(Deno.args[1]!, Deno.args[2]);
else await driver();
