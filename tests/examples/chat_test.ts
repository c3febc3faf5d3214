// End-to-end tests of the chat example: the real server process on a free
// port, raw TCP clients speaking the line protocol as `nc` would.
import assert from "node:assert/strict";
import {
  chatClient,
  ChatServer,
  closeAll,
  joinAll,
  LineClient,
  withChat,
} from "./_chat_helpers.ts";
import { delay, utf8, within } from "../_util.ts";

Deno.test("chat: a newcomer is welcomed as guest<id> and its room is told", async () => {
  await withChat(async ({ port }) => {
    const a = await LineClient.open(port);
    const b = await LineClient.open(port);
    try {
      assert.equal(await a.line(), "* welcome guest1");
      assert.equal(await b.line(), "* welcome guest2");
      assert.equal(await a.line(), "* guest2 joined");
      assert.deepEqual(await b.drain(), []);
      assert.deepEqual(await a.drain(), []);
    } finally {
      await closeAll([a, b]);
    }
  });
});

Deno.test("chat: a plain line reaches everyone else in the room, not the sender", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b, c] = clients as [LineClient, LineClient, LineClient];
    try {
      await a.send("hello world");
      assert.equal(await b.line(), "guest1: hello world");
      assert.equal(await c.line(), "guest1: hello world");
      assert.deepEqual(await a.drain(), []);

      // \r\n is accepted; UTF-8 comes through intact; blank lines vanish.
      await b.write(utf8("héllo 👋\r\n   \n\n"));
      assert.equal(await a.line(), "guest2: héllo 👋");
      assert.equal(await c.line(), "guest2: héllo 👋");
      assert.deepEqual(await a.drain(), []);
      assert.deepEqual(await b.drain(), []);
      assert.deepEqual(await c.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: /nick renames, tells the room, and refuses bad or taken nicks", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 2);
    const [a, b] = clients as [LineClient, LineClient];
    try {
      await a.send("/nick ada");
      assert.equal(await a.line(), "* guest1 is now ada");
      assert.equal(await b.line(), "* guest1 is now ada");

      const usage = "! usage: /nick NAME (1 to 24 letters, digits, _ or -)";
      await b.send("/nick ADA");
      assert.equal(await b.line(), "! nick ADA is taken");
      await b.send("/nick bad name");
      assert.equal(await b.line(), usage);
      await b.send("/nick");
      assert.equal(await b.line(), usage);
      await b.send("/nick " + "x".repeat(25));
      assert.equal(await b.line(), usage);
      await b.send("/nick guest7");
      assert.equal(await b.line(), "! guest names are reserved");
      await a.send("/nick ada");
      assert.equal(await a.line(), "! you are already ada");
      assert.deepEqual(await b.drain(), []);

      await b.send("/nick " + "B-_9".repeat(6));
      assert.equal(await a.line(), "* guest2 is now " + "B-_9".repeat(6));
      assert.equal(await b.line(), "* guest2 is now " + "B-_9".repeat(6));

      // Changing only the case of one's own nick is fine.
      await a.send("/nick Ada");
      assert.equal(await a.line(), "* ada is now Ada");
      assert.equal(await b.line(), "* ada is now Ada");
      await a.send("hi");
      assert.equal(await b.line(), "Ada: hi");

      // A nick is free again once its owner has left.
      await a.send("/quit");
      assert.equal(await a.line(), "* bye");
      await a.expectEof();
      assert.equal(await b.line(), "* Ada left");
      await b.send("/nick ada");
      assert.equal(await b.line(), `* ${"B-_9".repeat(6)} is now ada`);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: /msg reaches only the named user, in any room", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b, c] = clients as [LineClient, LineClient, LineClient];
    try {
      await c.send("/join attic");
      assert.equal(await c.line(), "* you are in attic");
      assert.equal(await a.line(), "* guest3 left");
      assert.equal(await b.line(), "* guest3 left");

      await a.send("/msg guest3 psst, up here?");
      assert.equal(await c.line(), "[guest1] psst, up here?");
      await a.send("/msg GUEST2   two  spaces"); // nicks match in any case
      assert.equal(await b.line(), "[guest1]   two  spaces");
      await a.send("/msg nobody hi");
      assert.equal(await a.line(), "! no such user nobody");
      await a.send("/msg guest2");
      assert.equal(await a.line(), "! usage: /msg NAME text");
      await a.send("/msg guest2   ");
      assert.equal(await a.line(), "! usage: /msg NAME text");
      for (const client of clients) assert.deepEqual(await client.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: /who lists the sender's room, sorted", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b, c] = clients as [LineClient, LineClient, LineClient];
    try {
      await b.send("/nick zed");
      await c.send("/nick Bob");
      for (const client of clients) {
        assert.equal(await client.line(), "* guest2 is now zed");
        assert.equal(await client.line(), "* guest3 is now Bob");
      }
      await a.send("/who");
      assert.equal(await a.line(), "* online: Bob, guest1, zed");
      await c.send("/join x");
      assert.equal(await c.line(), "* you are in x");
      await c.send("/who");
      assert.equal(await c.line(), "* online: Bob");
      await a.send("/who and arguments are ignored");
      assert.equal(await a.line(), "* Bob left");
      assert.equal(await a.line(), "* online: guest1, zed");
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: /join moves between rooms and plain lines stay in their room", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b, c] = clients as [LineClient, LineClient, LineClient];
    try {
      await c.send("/join games");
      assert.equal(await c.line(), "* you are in games");
      assert.equal(await a.line(), "* guest3 left");
      assert.equal(await b.line(), "* guest3 left");

      await b.send("/join games");
      assert.equal(await b.line(), "* you are in games");
      assert.equal(await a.line(), "* guest2 left");
      assert.equal(await c.line(), "* guest2 joined");

      await a.send("anyone?");
      await b.send("gg");
      assert.equal(await c.line(), "guest2: gg");
      assert.deepEqual(await a.drain(), []);
      assert.deepEqual(await b.drain(), []);
      assert.deepEqual(await c.drain(), []);

      await b.send("/join games");
      assert.equal(await b.line(), "! you are already in games");
      await b.send("/join no way");
      assert.equal(
        await b.line(),
        "! usage: /join ROOM (1 to 24 letters, digits, _ or -)",
      );
      await b.send("/join Games"); // room names are case-sensitive
      assert.equal(await b.line(), "* you are in Games");
      assert.equal(await c.line(), "* guest2 left");
      await b.send("/join lobby");
      assert.equal(await b.line(), "* you are in lobby");
      assert.equal(await a.line(), "* guest2 joined");
      await b.send("back");
      assert.equal(await a.line(), "guest2: back");
      assert.deepEqual(await c.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: /quit says bye, hangs up, and the room is told", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b, c] = clients as [LineClient, LineClient, LineClient];
    try {
      await c.send("/join elsewhere");
      assert.equal(await c.line(), "* you are in elsewhere");
      assert.equal(await a.line(), "* guest3 left");
      assert.equal(await b.line(), "* guest3 left");
      await b.send("/quit\nthis line is never read");
      assert.equal(await b.line(), "* bye");
      await b.expectEof();
      assert.equal(await a.line(), "* guest2 left");
      assert.deepEqual(await a.drain(), []);
      assert.deepEqual(await c.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: an unknown command is answered and the session goes on", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 2);
    const [a, b] = clients as [LineClient, LineClient];
    try {
      await a.send("/xyz");
      assert.equal(await a.line(), "! unknown command /xyz");
      await a.send("/xyz with arguments");
      assert.equal(await a.line(), "! unknown command /xyz");
      await a.send("/");
      assert.equal(await a.line(), "! unknown command /");
      await a.send("/help");
      assert.match(await a.line(), /^\* commands: \/nick NAME, /);
      await a.send("still here");
      assert.equal(await b.line(), "guest1: still here");
      assert.deepEqual(await b.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: a line over 4096 bytes disconnects its sender only", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b, c] = clients as [LineClient, LineClient, LineClient];
    try {
      const longest = "é".repeat(2048); // 4096 bytes
      await b.send(longest);
      assert.equal(await a.line(), `guest2: ${longest}`);
      assert.equal(await c.line(), `guest2: ${longest}`);

      await b.send(longest + "y");
      assert.equal(await b.line(), "! line too long");
      await b.expectEof();
      assert.equal(await a.line(), "* guest2 left");
      assert.equal(await c.line(), "* guest2 left");

      await a.send("still fine");
      assert.equal(await c.line(), "guest1: still fine");

      // Without a newline at all: cut off once the excess arrives.
      const d = await LineClient.join(port);
      clients.push(d);
      assert.equal(await a.line(), `* ${d.nick} joined`);
      assert.equal(await c.line(), `* ${d.nick} joined`);
      await d.write(new Uint8Array(64 * 1024).fill(0x61));
      assert.equal(await d.line(), "! line too long");
      await d.expectEof();
      assert.equal(await a.line(), `* ${d.nick} left`);
      assert.equal(await c.line(), `* ${d.nick} left`);
      assert.deepEqual(await a.drain(), []);
      assert.deepEqual(await c.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: invalid UTF-8 and garbage bytes affect nobody but the sender", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 4);
    const [a, b, c, d] = clients as [
      LineClient,
      LineClient,
      LineClient,
      LineClient,
    ];
    try {
      // Control characters could drive the others' terminals: refused,
      // but the sender stays.
      await c.send("\x1b[2J\x07gotcha\x00");
      assert.equal(await c.line(), "! control characters are not allowed");
      await c.send("tabs\tare fine");
      for (const client of [a, b, d]) {
        assert.equal(await client.line(), "guest3: tabs\tare fine");
      }

      await b.write(new Uint8Array([0x68, 0x69, 0xc3, 0x28, 0x0a]));
      assert.equal(await b.line(), "! invalid UTF-8");
      await b.expectEof();
      assert.equal(await a.line(), "* guest2 left");
      assert.equal(await d.line(), "* guest2 left");

      // Random bytes: either not UTF-8 or too long a line, never relayed.
      let seed = 42;
      const garbage = new Uint8Array(16 * 1024).map(() => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed >>> 24;
      });
      await d.write(garbage).catch(() => {}); // it may be cut off midway
      assert.match(await d.line(), /^! (invalid UTF-8|line too long)$/);
      await d.expectEof();
      assert.equal(await a.line(), "* guest4 left");
      assert.equal(await c.line(), "* guest2 left");
      assert.equal(await c.line(), "* guest4 left");

      await c.send("all good?");
      assert.equal(await a.line(), "guest3: all good?");
      assert.deepEqual(await a.drain(), []);
      assert.deepEqual(await c.drain(), []);
    } finally {
      await closeAll(clients);
    }
  });
});

Deno.test("chat: abrupt disconnects are noticed by the room", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 3);
    const [a, b] = clients as [LineClient, LineClient];
    // A raw connection that never reads: closing it with unread data makes
    // the kernel send a reset instead of a FIN.
    const raw = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      assert.equal(await a.line(), "* guest4 joined");
      assert.equal(await b.line(), "* guest4 joined");
      for (let i = 0; i < 20; i++) await a.send(`line ${i}`);
      for (let i = 0; i < 20; i++) {
        assert.equal(await b.line(), `guest1: line ${i}`);
      }
      raw.close();
      assert.equal(await a.line(), "* guest4 left");
      assert.equal(await b.line(), "* guest4 left");

      // Half a line, then a clean close: the end of the input ends that
      // line (lines() delivers a last line without "\n"), then the leave.
      await clients[2]!.write(utf8("half a li"));
      await clients[2]!.close();
      assert.equal(await a.line(), "guest3: half a li");
      assert.equal(await b.line(), "guest3: half a li");
      assert.equal(await a.line(), "* guest3 left");
      assert.equal(await b.line(), "* guest3 left");
      assert.deepEqual(await a.drain(), []);
      assert.deepEqual(await b.drain(), []);
    } finally {
      try {
        raw.close();
      } catch {
        // Closed above.
      }
      await closeAll(clients);
    }
  });
});

Deno.test("chat: 200 clients in one room get every message exactly once", async () => {
  await withChat(async ({ port }) => {
    const count = 200;
    const rounds = 3;
    const clients: LineClient[] = [];
    try {
      // Connect in batches; every welcome names a distinct guest.
      for (let i = 0; i < count; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: 50 }, () => LineClient.join(port)),
        );
        clients.push(...batch);
      }
      const nicks = new Set(clients.map((client) => client.nick));
      assert.equal(nicks.size, count);

      // Everyone talks at once.
      await Promise.all(clients.map(async (client) => {
        for (let r = 0; r < rounds; r++) await client.send(`m${r}`);
      }));

      // Each client hears every other client's lines exactly once (and
      // only `joined` notices besides), then the answer to its /who.
      const expected = (count - 1) * rounds;
      await Promise.all(clients.map(async (client) => {
        const heard = new Set<string>();
        while (heard.size < expected) {
          const line = await client.line(10000);
          if (/^\* guest\d+ joined$/.test(line)) continue;
          assert.match(line, /^guest\d+: m\d$/);
          assert.ok(!heard.has(line), `${client.nick} heard ${line} twice`);
          assert.ok(!line.startsWith(`${client.nick}:`), "echoed to sender");
          heard.add(line);
        }
        await client.send("/who");
        assert.match(await client.line(10000), /^\* online: /);
      }));
    } finally {
      await closeAll(clients);
    }
  }, ["--max-per-ip", "1000"]);
});

Deno.test("chat: a client that never reads is cut off without slowing the room", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 2);
    const [talker, listener] = clients as [LineClient, LineClient];
    const stuck = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      assert.equal(await talker.line(), "* guest3 joined");
      assert.equal(await listener.line(), "* guest3 joined");
      // The talker chats in bursts of 100 KB that the listener reads; the
      // stuck client reads nothing. Once the kernel's buffers for it and its
      // 256 KiB budget are full, the server cuts it off.
      const text = "z".repeat(4000);
      const burst = utf8(`${text}\n`.repeat(25));
      const started = Date.now();
      let left = false;
      let rounds = 0;
      while (!left) {
        assert.ok(++rounds <= 400, "the stuck client was never cut off");
        await talker.write(burst);
        for (let i = 0; i < 25; i++) {
          let line = await listener.line();
          if (line === "* guest3 left") {
            left = true;
            line = await listener.line();
          }
          assert.equal(line, `guest1: ${text}`);
        }
      }
      assert.equal(await talker.line(), "* guest3 left");
      assert.ok(Date.now() - started < 10000, "the room was slowed down");
      assert.deepEqual(await listener.drain(), []);
      assert.deepEqual(await talker.drain(), []);
    } finally {
      stuck.close();
      await closeAll(clients);
    }
  }, ["--rate", "0"]);
});

Deno.test("chat: idle clients are disconnected after --idle seconds", async () => {
  await withChat(async ({ port }) => {
    const clients = await joinAll(port, 2);
    const [active, idle] = clients as [LineClient, LineClient];
    try {
      const started = Date.now();
      while (!idle.ended) {
        assert.ok(Date.now() - started < 5000, "the idle client stayed");
        await active.send("/who");
        await delay(50);
      }
      assert.ok(Date.now() - started >= 250, "disconnected too early");
      const seen: string[] = [];
      while (!seen.includes("* guest2 left")) seen.push(await active.line());
      assert.ok(!active.ended);
    } finally {
      await closeAll(clients);
    }
  }, ["--idle", "0.3"]);
});

Deno.test("chat: SIGTERM tells everyone, closes every connection and exits 0", async () => {
  const server = await ChatServer.start();
  let clients: LineClient[] = [];
  try {
    clients = await joinAll(server.port, 3);
    await clients[2]!.send("/join other");
    assert.equal(await clients[2]!.line(), "* you are in other");
    for (const client of clients.slice(0, 2)) {
      assert.equal(await client.line(), "* guest3 left");
    }
    const exit = await server.stop("SIGTERM");
    for (const client of clients) {
      assert.equal(await client.line(), "* server shutting down");
      await client.expectEof();
    }
    assert.equal(exit.code, 0);
    assert.equal(exit.stderr, "");
    assert.match(
      exit.stdout,
      new RegExp(
        `^chat server listening on 127\\.0\\.0\\.1:${server.port}\n` +
          "chat web page on http://127\\.0\\.0\\.1:\\d+/\n$",
      ),
    );
  } finally {
    await server.stop();
    await closeAll(clients);
  }
});

Deno.test("chat: Ctrl-C (SIGINT) shuts down the same way", async () => {
  const server = await ChatServer.start();
  let clients: LineClient[] = [];
  try {
    clients = await joinAll(server.port, 1);
    const exit = await server.stop("SIGINT");
    assert.equal(await clients[0]!.line(), "* server shutting down");
    await clients[0]!.expectEof();
    assert.equal(exit.code, 0);
  } finally {
    await server.stop();
    await closeAll(clients);
  }
});

Deno.test("chat: the server rejects bad flags with a usage message", async () => {
  const server = new ChatServer(
    new URL("../../examples/chat_server.ts", import.meta.url),
    ["--port", "99999"],
    "null",
  );
  const exit = await server.exit();
  assert.equal(exit.code, 2);
  assert.match(exit.stderr, /--port must be an integer from 0 to 65535/);
  assert.match(exit.stderr, /^usage: /m);
});

Deno.test("chat_client: prints what arrives, sends what is typed, quits on EOF", async () => {
  await withChat(async ({ port }) => {
    const [b] = await joinAll(port, 1) as [LineClient];
    const client = chatClient(port);
    try {
      await client.waitFor(/^\* welcome guest2\n/);
      assert.equal(await b.line(), "* guest2 joined");
      const stdin = client.stdin!;
      await stdin.write(utf8("/nick ada\nhello from the client\r\n"));
      assert.equal(await b.line(), "* guest2 is now ada");
      assert.equal(await b.line(), "ada: hello from the client");
      await b.send("hi ada");
      await client.waitFor(/^guest1: hi ada\n/m);
      // EOF on stdin: the client says /quit and exits once the server
      // has hung up, after printing everything.
      await stdin.write(utf8("/who"));
      await stdin.close();
      const exit = await client.exit();
      assert.equal(exit.code, 0);
      assert.equal(
        exit.stdout,
        "* welcome guest2\n* guest2 is now ada\nguest1: hi ada\n" +
          "* online: ada, guest1\n* bye\n",
      );
      assert.equal(await b.line(), "* ada left");
    } finally {
      await client.stop();
      await b.close();
    }
  });
});

Deno.test("chat_client: exits when the server goes away", async () => {
  const server = await ChatServer.start();
  const client = chatClient(server.port);
  try {
    await client.waitFor(/^\* welcome guest1\n/);
    await server.stop("SIGTERM");
    const exit = await client.exit();
    assert.equal(exit.code, 0);
    assert.equal(exit.stdout, "* welcome guest1\n* server shutting down\n");
  } finally {
    await client.stop();
    await server.stop();
  }
});

Deno.test("chat_client: --reconnect comes back with the same nick and room", async () => {
  let server = await ChatServer.start();
  const port = server.port;
  const client = chatClient(port, ["--reconnect"]);
  try {
    await client.waitFor(/^\* welcome guest1\n/);
    await client.stdin!.write(utf8("/nick ada\n/join den\n"));
    await client.waitFor(/\* you are in den\n/);
    await server.stop("SIGTERM");
    await client.waitFor(/\* server shutting down\n/);
    // A new server on the same port: the client finds it, and replays the
    // last /nick and /join.
    server = await ChatServer.start(["--port", String(port)]);
    await client.waitFor(/\* welcome guest1\n.*\n\* you are in den\n$/);
    assert.match(client.stdout, /\* guest1 is now ada\n\* you are in den\n$/);
    await client.stdin!.close();
    const exit = await client.exit();
    assert.equal(exit.code, 0);
    assert.match(exit.stdout, /\* you are in den\n\* bye\n$/);
    assert.match(exit.stderr, /reconnected/);
  } finally {
    await client.stop();
    await server.stop();
  }
});

Deno.test("chat_client: fails clearly when nobody listens", async () => {
  // Find a port nobody listens on.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const client = chatClient(port);
  try {
    const exit = await within(client.exit(), 10000, "client exit");
    assert.equal(exit.code, 1);
    assert.match(exit.stderr, /cannot connect to 127\.0\.0\.1:\d+/);
  } finally {
    await client.stop();
  }
});

Deno.test("chat: one address that keeps opening connections can't lock another one out, and memory stays bounded", async () => {
  await withChat(async (server) => {
    const { port } = server;
    const rss = async (): Promise<number> => {
      const status = await Deno.readTextFile(
        `/proc/${server.process.pid}/status`,
      );
      return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
    };
    const before = await rss();
    let peak = before;
    const held: Deno.TcpConn[] = [];
    let attacking = true;
    // The attacker: 127.0.0.1 opens connections as fast as it can, keeps
    // them, and never stops while the test runs (bounded: 4,000 tries).
    const attack = (async () => {
      for (let i = 0; i < 4000 && attacking; i++) {
        try {
          held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
        } catch {
          await delay(5);
        }
        if (i % 100 === 0) peak = Math.max(peak, await rss());
      }
    })();
    try {
      await delay(500);
      // Deno can't pick a source address; Node can. A newcomer from
      // 127.0.0.2 must be welcomed within a second.
      const script = `
        const net = require("node:net");
        const started = Date.now();
        const s = net.connect({ host: "127.0.0.1", port: ${port}, localAddress: "127.0.0.2" });
        let text = "";
        s.on("data", (d) => {
          text += d;
          if (text.includes("\\n")) {
            console.log(JSON.stringify({ line: text.split("\\n")[0], ms: Date.now() - started }));
            clearTimeout(timer);
            s.destroy();
          }
        });
        s.on("error", (e) => { console.log(JSON.stringify({ error: String(e) })); clearTimeout(timer); });
        const timer = setTimeout(() => { console.log(JSON.stringify({ timeout: true })); s.destroy(); }, 5000);`;
      const { stdout } = await new Deno.Command("node", {
        args: ["-e", script],
        stdout: "piped",
        stderr: "null",
      }).output();
      const result = JSON.parse(new TextDecoder().decode(stdout).trim());
      assert.match(
        result.line ?? JSON.stringify(result),
        /^\* welcome guest\d+$/,
      );
      assert.ok(result.ms < 1000, `welcomed after ${result.ms} ms`);
      peak = Math.max(peak, await rss());
    } finally {
      attacking = false;
      await attack;
      for (const conn of held) conn.close();
    }
    assert.ok(held.length > 32, `the attacker opened only ${held.length}`);
    const growth = peak - before;
    assert.ok(growth < 40 * 1024 * 1024, `RSS grew by ${growth} bytes`);
  });
});

Deno.test("chat: --rate throttles a pasted flood without losing a line", async () => {
  await withChat(async ({ port }) => {
    const [talker, listener] = await joinAll(port, 2) as [
      LineClient,
      LineClient,
    ];
    try {
      const started = Date.now();
      // --rate 20 lets 40 through at once, then 20 a second.
      let text = "";
      for (let i = 0; i < 60; i++) text += `line ${i}\n`;
      await talker.write(utf8(text));
      for (let i = 0; i < 60; i++) {
        assert.equal(await listener.line(), `guest1: line ${i}`);
      }
      const elapsed = Date.now() - started;
      // A burst of 40, then 20 more at 20 per second: about a second.
      assert.ok(elapsed >= 800, `60 lines took only ${elapsed} ms`);
    } finally {
      await closeAll([talker, listener]);
    }
  }, ["--rate", "20"]);
});
