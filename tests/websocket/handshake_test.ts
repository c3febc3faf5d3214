// The WebSocket opening handshake, in memory: the HTTP head parser (every
// split, limits before storing, malformed heads), the server's decisions and
// responses, and the client's request and response check, end to end.
import assert from "node:assert/strict";
import {
  HttpHeadError,
  type HttpRequestHead,
  RequestHeadParser,
  ResponseHeadParser,
} from "../../src/websocket/_http_head.ts";
import {
  acceptKey,
  checkUpgrade,
  checkUpgradeResponse,
  clientHandshake,
  HandshakeError,
  httpResponse,
  type UpgradeDecision,
  type UpgradeOptions,
  upgradeResponse,
} from "../../src/websocket/_handshake.ts";
import { concat, cuts } from "../_split.ts";
import { randomChunks, seededRandom } from "../_util.ts";

const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

const RFC_REQUEST = "GET /chat HTTP/1.1\r\n" +
  "Host: server.example.com\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Origin: http://example.com\r\n" +
  "Sec-WebSocket-Protocol: chat, superchat\r\n" +
  "Sec-WebSocket-Version: 13\r\n\r\n";

/** Parses a whole request head (throws HttpHeadError). */
function parseRequest(text: string): HttpRequestHead {
  const parser = new RequestHeadParser();
  const bytes = encode(text);
  assert.equal(parser.push(bytes), bytes.length);
  return parser.head!;
}

/** A valid upgrade request's head with some fields replaced or removed. */
function request(
  changes: Record<string, string | null> = {},
  line = "GET /ws HTTP/1.1",
): HttpRequestHead {
  const fields: Record<string, string | null> = {
    Host: "127.0.0.1:9001",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...changes,
  };
  let text = line + "\r\n";
  for (const [name, value] of Object.entries(fields)) {
    if (value !== null) text += `${name}: ${value}\r\n`;
  }
  return parseRequest(text + "\r\n");
}

function assertRejected(
  decision: UpgradeDecision,
  status: number,
): string {
  assert.equal(decision.kind, "reject");
  assert.ok(decision.kind === "reject");
  assert.equal(decision.status, status);
  const text = decode(decision.response);
  assert.ok(text.startsWith(`HTTP/1.1 ${status} `), text);
  assert.match(text, /\r\nConnection: close\r\n/);
  return text;
}

Deno.test("acceptKey computes the RFC 6455 example accept value", async () => {
  assert.equal(
    await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
});

Deno.test("RequestHeadParser parses the RFC request at every split and leaves the frames after it", () => {
  const frames = new Uint8Array([0x81, 0x80, 1, 2, 3, 4]);
  const bytes = concat(encode(RFC_REQUEST), frames);
  for (const [label, chunks] of cuts(bytes)) {
    const parser = new RequestHeadParser();
    let rest: Uint8Array | undefined;
    for (const chunk of chunks) {
      if (rest !== undefined) {
        rest = concat(rest, chunk);
        continue;
      }
      const used = parser.push(chunk);
      if (used >= 0) rest = chunk.subarray(used);
      else assert.equal(parser.head, undefined);
    }
    assert.deepEqual(rest, frames, label);
    assert.equal(parser.buffered, 0);
    const head = parser.head!;
    assert.equal(head.method, "GET", label);
    assert.equal(head.path, "/chat");
    assert.equal(head.version, "HTTP/1.1");
    assert.equal(head.headers.get("sec-websocket-protocol"), "chat, superchat");
    assert.equal(head.headers.get("host"), "server.example.com");
    assert.equal(head.headers.size, 7);
  }
});

Deno.test("RequestHeadParser accepts bare LF, leading empty lines, repeated fields", () => {
  const head = parseRequest(
    "\r\n\nGET /a?b=c HTTP/1.1\nX-A:  1 \nx-a: 2\r\nEmpty:\n\n",
  );
  assert.equal(head.target, "/a?b=c");
  assert.equal(head.path, "/a");
  assert.equal(head.headers.get("x-a"), "1, 2");
  assert.equal(head.headers.get("empty"), "");
  const parser = new RequestHeadParser();
  parser.push(encode("GET / HTTP/1.1\r\n\r\n"));
  assert.throws(() => parser.push(encode("more")), TypeError);
});

Deno.test("RequestHeadParser refuses a head over maxHeadBytes before storing it (431)", () => {
  const parser = new RequestHeadParser({ maxHeadBytes: 1024 });
  const junk = encode("GET / HTTP/1.1\r\nX: " + "a".repeat(100));
  let error: unknown;
  try {
    for (let i = 0; i < 100; i++) {
      parser.push(junk);
      assert.ok(parser.buffered <= 1024);
    }
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof HttpHeadError);
  assert.equal(error.status, 431);
  // Exactly the limit is fine; one more byte is not.
  const exact = "GET / HTTP/1.1\r\nX: " + "a".repeat(1024 - 23) + "\r\n\r\n";
  assert.equal(encode(exact).length, 1024);
  assert.equal(
    new RequestHeadParser({ maxHeadBytes: 1024 }).push(encode(exact)),
    1024,
  );
  assert.throws(
    () => new RequestHeadParser({ maxHeadBytes: 1023 }).push(encode(exact)),
    (e) => e instanceof HttpHeadError && e.status === 431,
  );
  // One byte at a time: the same.
  const slow = new RequestHeadParser({ maxHeadBytes: 1023 });
  const bytes = encode(exact);
  assert.throws(() => {
    for (let i = 0; i < bytes.length; i++) slow.push(bytes.subarray(i, i + 1));
  }, (e) => e instanceof HttpHeadError && e.status === 431);
});

Deno.test("RequestHeadParser refuses more than maxHeaders fields (431)", () => {
  const fields = (n: number) =>
    Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join("");
  assert.equal(
    parseRequest(`GET / HTTP/1.1\r\n${fields(64)}\r\n`).headers.size,
    64,
  );
  assert.throws(
    () => parseRequest(`GET / HTTP/1.1\r\n${fields(65)}\r\n`),
    (e) => e instanceof HttpHeadError && e.status === 431,
  );
});

Deno.test("RequestHeadParser refuses malformed heads (400)", () => {
  const bad = [
    "GET /\r\n\r\n",
    "GET  / HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1 x\r\n\r\n",
    "G(T / HTTP/1.1\r\n\r\n",
    "GET / HTTP/11\r\n\r\n",
    "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    "GET / HTTP/1.1\r\nSpace : x\r\n\r\n",
    "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
    "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    "GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
    "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
    "GET /\x7f HTTP/1.1\r\n\r\n",
  ];
  for (const text of bad) {
    assert.throws(
      () => parseRequest(text),
      (e) => e instanceof HttpHeadError && e.status === 400,
      JSON.stringify(text),
    );
  }
});

Deno.test("RequestHeadParser survives seeded garbage with bounded buffering", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = seededRandom(seed);
    const alphabet = encode("GET /HTP1.:\r\n aZ\x00\xff");
    const input = new Uint8Array(3000).map(() =>
      alphabet[Math.floor(random() * alphabet.length)]!
    );
    const parser = new RequestHeadParser({ maxHeadBytes: 2048 });
    try {
      for (const chunk of randomChunks(input, 50, random)) {
        if (parser.push(chunk) >= 0) break;
        assert.ok(parser.buffered <= 2048);
      }
    } catch (error) {
      assert.ok(error instanceof HttpHeadError, `seed ${seed}: ${error}`);
    }
  }
});

Deno.test("checkUpgrade accepts a valid upgrade and negotiates the subprotocol", () => {
  const head = parseRequest(RFC_REQUEST);
  assert.deepEqual(checkUpgrade(head), {
    kind: "upgrade",
    key: "dGhlIHNhbXBsZSBub25jZQ==",
    protocol: undefined,
  });
  const pick = (protocols: string[]) => {
    const d = checkUpgrade(head, { protocols });
    return d.kind === "upgrade" ? d.protocol : "not an upgrade";
  };
  // The client's order wins: it offered "chat, superchat".
  assert.equal(pick(["superchat", "chat"]), "chat");
  assert.equal(pick(["superchat"]), "superchat");
  assert.equal(pick(["other"]), undefined);
  // Token lists are case-insensitive and may hold several tokens.
  assert.equal(
    checkUpgrade(
      request({ Upgrade: "WebSocket", Connection: "keep-alive, UPGRADE" }),
    ).kind,
    "upgrade",
  );
});

Deno.test("checkUpgrade tells plain HTTP requests apart", () => {
  assert.deepEqual(
    checkUpgrade(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n")),
    {
      kind: "http",
    },
  );
  assert.deepEqual(checkUpgrade(request({ Upgrade: "h2c" })), { kind: "http" });
  assert.deepEqual(checkUpgrade(request({ Upgrade: null })), { kind: "http" });
  // A POST without Upgrade is plain HTTP too (the server answers it).
  assert.deepEqual(
    checkUpgrade(parseRequest("POST /x HTTP/1.1\r\nHost: a\r\n\r\n")),
    { kind: "http" },
  );
});

Deno.test("checkUpgrade refuses broken upgrades with the right status", () => {
  const options: UpgradeOptions = { path: "/ws" };
  const allow = assertRejected(
    checkUpgrade(request({}, "POST /ws HTTP/1.1"), options),
    405,
  );
  assert.match(allow, /\r\nAllow: GET\r\n/);
  assertRejected(checkUpgrade(request({}, "GET /ws HTTP/1.0"), options), 400);
  assertRejected(
    checkUpgrade(request({}, "GET /other HTTP/1.1"), options),
    404,
  );
  assert.equal(
    checkUpgrade(request({}, "GET /ws?room=a HTTP/1.1"), options).kind,
    "upgrade",
  );
  assertRejected(checkUpgrade(request({ Connection: "keep-alive" })), 400);
  assertRejected(checkUpgrade(request({ Connection: null })), 400);
  assertRejected(checkUpgrade(request({ Host: null })), 400);
  for (const version of ["8", "14", "", "13, 8"]) {
    const text = assertRejected(
      checkUpgrade(request({ "Sec-WebSocket-Version": version })),
      426,
    );
    assert.match(text, /\r\nSec-WebSocket-Version: 13\r\n/);
  }
  assertRejected(checkUpgrade(request({ "Sec-WebSocket-Version": null })), 426);
  for (
    const key of [
      null,
      "",
      "dGhlIHNhbXBsZSBub25jZQ", // no padding
      "dGhlIHNhbXBsZSBub25jZQ=", // 16 bytes needs "=="
      "dGhlIHNhbXBsZSBub25jZR==", // non-canonical padding bits
      "dGhlIHNhbXBsZSBub25jZXg=", // 17 bytes
      "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ==", // repeated field
    ]
  ) {
    assertRejected(checkUpgrade(request({ "Sec-WebSocket-Key": key })), 400);
  }
});

Deno.test("checkUpgrade applies the Origin allow-list (403)", () => {
  const list: UpgradeOptions = { origins: ["https://Chat.Example"] };
  assert.equal(
    checkUpgrade(request({ Origin: "https://chat.example" }), list).kind,
    "upgrade",
  );
  assertRejected(
    checkUpgrade(request({ Origin: "https://evil.example" }), list),
    403,
  );
  assertRejected(checkUpgrade(request({ Origin: "null" }), list), 403);
  // No Origin: not a browser; a list lets it through.
  assert.equal(checkUpgrade(request(), list).kind, "upgrade");
  const seen: (string | undefined)[] = [];
  const fn: UpgradeOptions = {
    origins: (origin) => {
      seen.push(origin);
      return origin?.endsWith(".example") ?? false;
    },
  };
  assert.equal(
    checkUpgrade(request({ Origin: "http://a.example" }), fn).kind,
    "upgrade",
  );
  assertRejected(checkUpgrade(request(), fn), 403);
  assert.deepEqual(seen, ["http://a.example", undefined]);
});

Deno.test("upgradeResponse and httpResponse build well-formed responses", async () => {
  const parser = new ResponseHeadParser();
  const bytes = await upgradeResponse("dGhlIHNhbXBsZSBub25jZQ==", "chat");
  assert.equal(parser.push(bytes), bytes.length);
  const head = parser.head!;
  assert.equal(head.status, 101);
  assert.equal(head.statusText, "Switching Protocols");
  assert.equal(
    head.headers.get("sec-websocket-accept"),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.equal(head.headers.get("sec-websocket-protocol"), "chat");
  assert.equal(head.headers.get("upgrade"), "websocket");

  const page = httpResponse(200, "<h1>é</h1>", {
    "Content-Type": "text/html; charset=utf-8",
  });
  const text = decode(page);
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, /\r\nContent-Length: 11\r\n/);
  assert.match(text, /\r\nContent-Type: text\/html; charset=utf-8\r\n/);
  assert.ok(text.endsWith("\r\n\r\n<h1>é</h1>"));
  assert.match(decode(httpResponse(404)), /^HTTP\/1\.1 404 Not Found\r\n/);
  assert.match(
    decode(httpResponse(431)),
    /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/,
  );
  assert.throws(() => httpResponse(101), RangeError);
  assert.throws(
    () => httpResponse(200, "", { "X-A": "a\r\nInjected: 1" }),
    TypeError,
  );
  assert.throws(() => httpResponse(200, "", { "Bad Name": "a" }), TypeError);
});

Deno.test("the client handshake round-trips through the server side", async () => {
  const handshake = clientHandshake("ws://127.0.0.1:9001/ws?room=a", {
    protocols: ["chat.v2", "chat.v1"],
    origin: "http://127.0.0.1:9001",
    headers: { "User-Agent": "test" },
  });
  assert.equal(handshake.hostname, "127.0.0.1");
  assert.equal(handshake.port, 9001);
  assert.equal(handshake.secure, false);
  // The server parses and accepts the request...
  const requestParser = new RequestHeadParser();
  assert.equal(requestParser.push(handshake.request), handshake.request.length);
  const head = requestParser.head!;
  assert.equal(head.headers.get("origin"), "http://127.0.0.1:9001");
  assert.equal(head.headers.get("user-agent"), "test");
  const decision = checkUpgrade(head, {
    path: "/ws",
    protocols: ["chat.v1"],
    origins: ["http://127.0.0.1:9001"],
  });
  assert.ok(decision.kind === "upgrade");
  assert.equal(decision.key, handshake.key);
  // ...and the client checks the server's response.
  const responseParser = new ResponseHeadParser();
  const response = await upgradeResponse(decision.key, decision.protocol);
  responseParser.push(response);
  assert.equal(
    await checkUpgradeResponse(responseParser.head!, handshake),
    "chat.v1",
  );
  // Keys are random.
  assert.notEqual(
    clientHandshake("ws://a/").key,
    clientHandshake("ws://a/").key,
  );
  const v6 = clientHandshake("wss://[::1]/");
  assert.equal(v6.hostname, "::1");
  assert.equal(v6.port, 443);
  assert.ok(v6.secure);
  assert.match(decode(v6.request), /^GET \/ HTTP\/1\.1\r\nHost: \[::1\]\r\n/);
});

Deno.test("checkUpgradeResponse refuses responses that do not accept the upgrade", async () => {
  const handshake = clientHandshake("ws://127.0.0.1:1/", { protocols: ["a"] });
  const accept = await acceptKey(handshake.key);
  const response = (status: number, fields: Record<string, string>) => {
    const parser = new ResponseHeadParser();
    let text = `HTTP/1.1 ${status} X\r\n`;
    for (const [k, v] of Object.entries(fields)) text += `${k}: ${v}\r\n`;
    parser.push(encode(text + "\r\n"));
    return parser.head!;
  };
  const good = {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Accept": accept,
  };
  assert.equal(
    await checkUpgradeResponse(response(101, good), handshake),
    undefined,
  );
  const cases: [number, Record<string, string>][] = [
    [404, good],
    [101, { ...good, "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" }],
    [101, { ...good, Upgrade: "h2c" }],
    [101, { ...good, Connection: "close" }],
    [101, { ...good, "Sec-WebSocket-Protocol": "b" }],
    [101, { ...good, "Sec-WebSocket-Extensions": "permessage-deflate" }],
  ];
  for (const [status, fields] of cases) {
    await assert.rejects(
      checkUpgradeResponse(response(status, fields), handshake),
      (e) => e instanceof HandshakeError && e.status === status,
      JSON.stringify(fields),
    );
  }
  assert.throws(() => clientHandshake("http://a/"), TypeError);
  assert.throws(() => clientHandshake("ws://a/#x"), TypeError);
  assert.throws(
    () => clientHandshake("ws://a/", { protocols: ["a b"] }),
    TypeError,
  );
  assert.throws(
    () => clientHandshake("ws://a/", { headers: { X: "a\nb" } }),
    TypeError,
  );
});
