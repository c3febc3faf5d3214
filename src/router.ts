// Message routing: a key taken from each message picks a handler, wrapped in
// before/after middleware (the seed's OnMessage veto and its modules'
// BeforeRequest/AfterRequest hooks). Errors are never swallowed: they go back
// to whoever called `router.handler`, which for `listen()` means `onError`.
import type { Codec } from "./codec/codec.ts";
import type { Session } from "./session/session.ts";
import { RouteNotFoundError } from "./errors.ts";
import {
  firstWord,
  moduleMethodOrAction,
  typeField,
} from "./codec/_route_keys.ts";

/**
 * Handles the messages of one route.
 *
 * The return value is ignored (so `(session, m) => session.send(m)` is
 * fine), except that a returned promise is awaited before the
 * after-middleware run (and, under `listen()`, before the session's next
 * message is handled).
 *
 * @typeParam S The session type.
 * @typeParam M The message type of the route.
 * @typeParam K The key type: `string` for routes, `string | undefined` for a
 * fallback.
 *
 * @example A handler written on its own, then registered
 * ```ts
 * import { type RouteHandler, Router, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Chat = { type: "chat"; text: string };
 * type S = Session<unknown, Chat>;
 * const seen: string[] = [];
 * const onChat: RouteHandler<S, Chat> = (_session, message, key) => {
 *   seen.push(`${key}: ${message.text}`);
 * };
 * new Router<Chat>().on("chat", onChat).handler({} as S, { type: "chat", text: "hi" });
 * assert.deepEqual(seen, ["chat: hi"]);
 * ```
 */
export type RouteHandler<S, M, K = string> = (
  session: S,
  message: M,
  key: K,
) => unknown;

/**
 * Runs before or after a route's handler. Returning exactly `false` (or a
 * promise of it) stops the message: the handler and every later middleware
 * are skipped. Stopping does not close the session; call `session.close()`
 * for that.
 *
 * @typeParam S The session type.
 * @typeParam M The message type the middleware sees.
 *
 * @example A typed veto passed to `router.before()`
 * ```ts
 * import { type Middleware, Router, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type S = Session<{ name?: string }, string>;
 * const named: Middleware<S, string> = (session) => session.data.name !== undefined;
 * const said: string[] = [];
 * const router = new Router<string, string, S>()
 *   .before(named)
 *   .on("/say", (_session, line) => void said.push(line));
 * const session = { data: {} } as S;
 * router.handler(session, "/say first"); // stopped: no name yet
 * session.data.name = "ada";
 * router.handler(session, "/say second");
 * assert.deepEqual(said, ["/say second"]);
 * ```
 */
export type Middleware<S, M> = (
  session: S,
  message: M,
  key: string | undefined,
) => boolean | void | Promise<boolean | void>;

/**
 * Middleware attached to one route or to a group of routes.
 *
 * @typeParam S The session type.
 * @typeParam M The message type the middleware sees.
 *
 * @example Middleware around one route
 * ```ts
 * import { type RouteOptions, Router, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type S = Session<unknown, string>;
 * const log: string[] = [];
 * const audited: RouteOptions<S, string> = {
 *   before: [(_session, line) => void log.push(`before ${line}`)],
 *   after: [(_session, line) => void log.push(`after ${line}`)],
 * };
 * const router = new Router<string>().on("PING", () => void log.push("handler"), audited);
 * router.handler({} as S, "PING");
 * assert.deepEqual(log, ["before PING", "handler", "after PING"]);
 * ```
 */
export interface RouteOptions<S, M> {
  /** Run before the handler, in order. @default {[]} */
  before?: Middleware<S, M>[];
  /** Run after the handler, in order. @default {[]} */
  after?: Middleware<S, M>[];
}

/**
 * The routes of a message type: route key → the message type its handler
 * receives.
 *
 * @typeParam Msg The message type.
 *
 * @example Any key, each handler receiving the whole message type
 * ```ts
 * import { type RouteTable, Router, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { op: string; n: number };
 * type S = Session<unknown, Msg>;
 * const router = new Router<Msg, Msg, S, RouteTable<Msg>>({ key: (message) => message.op });
 * let total = 0;
 * router.on("add", (_session, message) => void (total += message.n));
 * router.handler({} as S, { op: "add", n: 2 });
 * router.handler({} as S, { op: "add", n: 3 });
 * assert.equal(total, 5);
 * ```
 */
export type RouteTable<Msg> = Record<string, Msg>;

/**
 * Routes of a union discriminated by the string field `F`: each value of
 * `F` is a key, and its handler receives the members of `Msg` that carry it.
 *
 * @typeParam Msg The message type, typically a union.
 * @typeParam F The discriminant field.
 *
 * @example Routing on a field named `kind`
 * ```ts
 * import { Router, type RoutesBy, type Session } from "@x/microsocket";
 *
 * type Msg = { kind: "a"; n: number } | { kind: "b"; s: string };
 * const router = new Router<Msg, Msg, Session<unknown, Msg>, RoutesBy<Msg, "kind">>(
 *   { key: (message) => message.kind },
 * );
 * router.on("a", (_session, message) => void message.n.toFixed());
 * ```
 */
export type RoutesBy<Msg, F extends string> = {
  [K in Extract<Msg, Record<F, string>>[F]]: Extract<Msg, Record<F, K>>;
};

/**
 * The routes {@linkcode Router} assumes when none are given, matching
 * {@linkcode defaultRouteKey}: a union with a string `type` field is routed
 * by `type`, each route narrowed to its members; any other message type
 * (strings, microSocket maps, `unknown`) may use any key and is not narrowed.
 *
 * @typeParam Msg The message type.
 *
 * @example What the default routes look like
 * ```ts
 * import { Router, type RoutesOf, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { type: "chat"; text: string } | { type: "ping" };
 * // Routed by `type`; the "chat" route receives only the chat member.
 * const chat: RoutesOf<Msg>["chat"] = { type: "chat", text: "hi" };
 * // Text lines may use any key.
 * const line: RoutesOf<string>["/anything"] = "/anything goes";
 *
 * const texts: string[] = [];
 * new Router<Msg>()
 *   .on("chat", (_session, message) => void texts.push(message.text))
 *   .handler({} as Session<unknown, Msg>, chat);
 * assert.deepEqual(texts, ["hi"]);
 * assert.ok(line.startsWith("/anything"));
 * ```
 */
export type RoutesOf<Msg> = [Msg] extends [string] ? RouteTable<Msg>
  : [Extract<Msg, Record<"type", string>>] extends [never] ? RouteTable<Msg>
  : RoutesBy<Msg, "type">;

/**
 * Options for {@linkcode Router}.
 *
 * @typeParam Msg The message type.
 * @typeParam S The session type.
 *
 * @example Routing by a custom field
 * ```ts
 * import { Router, type RouterOptions, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { op: string };
 * type S = Session<unknown, Msg>;
 * const unrouted: (string | undefined)[] = [];
 * const options: RouterOptions<Msg, S> = {
 *   key: (message) => message.op,
 *   fallback: (_session, _message, key) => void unrouted.push(key),
 * };
 * const router = new Router<Msg, Msg, S>(options).on("hello", () => {});
 * router.handler({} as S, { op: "hello" });
 * router.handler({} as S, { op: "bye" });
 * assert.deepEqual(unrouted, ["bye"]);
 * ```
 */
export interface RouterOptions<Msg, S> {
  /**
   * Takes the route key from a message; `undefined` means "no key" and
   * goes to the fallback. By default the session's codec decides
   * ({@linkcode Codec.routeKey}: a line's first word, a JSON `type`, a
   * microSocket `module.method` or `action`), and
   * {@linkcode defaultRouteKey} when the codec has no rule.
   *
   * @default {session.codec.routeKey ?? defaultRouteKey}
   */
  key?: (message: Msg) => string | undefined;
  /**
   * Handles messages whose key has no route (or that have no key), after
   * the router-wide before-middleware. By default it throws a
   * {@linkcode RouteNotFoundError}, which `listen()` reports to `onError`
   * without closing the session.
   */
  fallback?: RouteHandler<S, Msg, string | undefined>;
}

/**
 * The route key the router uses when it has no `key` option and the
 * session's codec has no {@linkcode Codec.routeKey} (e.g. the stand-in
 * sessions of unit tests): each built-in codec's rule, tried in turn.
 * - a string (a text line): its first word, i.e. everything before the
 *   first space (the whole line when it has none); the rest of the line is
 *   `line.slice(key.length + 1)`;
 * - an object with a string `type` field (JSON): `type`;
 * - a microSocket map with string `module` and `method`: `"module.method"`;
 * - one with a string `action`: `action`;
 * - anything else: `undefined` (the fallback handles it).
 *
 * @param message A decoded message.
 * @returns The route key, or `undefined`.
 *
 * @example
 * ```ts
 * import { defaultRouteKey } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * assert.equal(defaultRouteKey("/join lobby"), "/join");
 * assert.equal(defaultRouteKey({ type: "chat", text: "hi" }), "chat");
 * assert.equal(defaultRouteKey({ module: "user", method: "Login" }), "user.Login");
 * assert.equal(defaultRouteKey({ action: "ping" }), "ping");
 * assert.equal(defaultRouteKey(42), undefined);
 * ```
 */
export function defaultRouteKey(message: unknown): string | undefined {
  if (typeof message === "string") return firstWord(message);
  return typeField(message) ?? moduleMethodOrAction(message);
}

/**
 * Routes registered together share middleware. Obtained from
 * {@linkcode Router.group} (or `group()` of another group); a group's
 * middleware wraps its routes inside the middleware of the groups around it.
 *
 * @typeParam Msg The message type.
 * @typeParam S The session type.
 * @typeParam Routes The route table.
 *
 * @example Admin-only routes
 * ```ts
 * import { type RouteGroup, type RouteTable, Router, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type S = Session<{ admin: boolean }, string>;
 * const kicked: string[] = [];
 * const router = new Router<string, string, S>();
 * const admin: RouteGroup<string, S, RouteTable<string>> = router.group({
 *   before: [(session) => session.data.admin],
 * });
 * admin.on("/kick", (_session, line, key) => void kicked.push(line.slice(key.length + 1)));
 * router.handler({ data: { admin: false } } as S, "/kick bob"); // stopped
 * router.handler({ data: { admin: true } } as S, "/kick eve");
 * assert.deepEqual(kicked, ["eve"]);
 * ```
 */
export interface RouteGroup<Msg, S, Routes extends RouteTable<Msg>> {
  /**
   * Registers the handler of a route key; see {@linkcode Router.on}.
   *
   * @param key The route key.
   * @param handler Receives the session and the message, narrowed to the
   * route's type.
   * @param options Middleware of this route only.
   * @returns This group, for chaining.
   * @throws {TypeError} When the key already has a route in the router.
   */
  on<K extends keyof Routes & string>(
    key: K,
    handler: RouteHandler<S, Routes[K]>,
    options?: RouteOptions<S, Routes[K]>,
  ): this;
  /**
   * Adds middleware run before the handlers of this group's routes.
   *
   * @param middleware Middleware, in order.
   * @returns This group, for chaining.
   */
  before(...middleware: Middleware<S, Msg>[]): this;
  /**
   * Adds middleware run after the handlers of this group's routes.
   *
   * @param middleware Middleware, in order.
   * @returns This group, for chaining.
   */
  after(...middleware: Middleware<S, Msg>[]): this;
  /**
   * Creates a group nested in this one.
   *
   * @param options The nested group's middleware.
   * @returns The new group.
   */
  group(options?: RouteOptions<S, Msg>): RouteGroup<Msg, S, Routes>;
}

// deno-lint-ignore no-explicit-any
type AnyStep = (session: any, message: any, key: any) => unknown;

// A compiled route: every step in order, and which one is the handler
// (whose return value does not stop the chain).
interface Chain {
  steps: AnyStep[];
  handlerAt: number;
}

interface Entry {
  group: Group;
  handler: AnyStep;
  before: AnyStep[];
  after: AnyStep[];
}

// Shared by a router and all its groups.
interface Registry {
  entries: Map<string, Entry>;
  dirty: boolean;
}

class Group implements RouteGroup<unknown, unknown, RouteTable<unknown>> {
  readonly parent: Group | undefined;
  readonly beforeSteps: AnyStep[];
  readonly afterSteps: AnyStep[];
  readonly #registry: Registry;

  constructor(
    registry: Registry,
    parent: Group | undefined,
    options: RouteOptions<unknown, unknown>,
  ) {
    this.#registry = registry;
    this.parent = parent;
    this.beforeSteps = [...(options.before ?? [])];
    this.afterSteps = [...(options.after ?? [])];
  }

  on(
    key: string,
    handler: RouteHandler<unknown, unknown>,
    options: RouteOptions<unknown, unknown> = {},
  ): this {
    if (typeof key !== "string") {
      throw new TypeError(`Route key must be a string, got ${typeof key}`);
    }
    if (typeof handler !== "function") {
      throw new TypeError(`Handler of route "${key}" must be a function`);
    }
    const entries = this.#registry.entries;
    if (entries.has(key)) {
      throw new TypeError(`Route "${key}" is already registered`);
    }
    const before = [...checked(options.before ?? [])];
    const after = [...checked(options.after ?? [])];
    entries.set(key, { group: this, handler, before, after });
    this.#registry.dirty = true;
    return this;
  }

  before(...middleware: Middleware<unknown, unknown>[]): this {
    this.beforeSteps.push(...checked(middleware));
    this.#registry.dirty = true;
    return this;
  }

  after(...middleware: Middleware<unknown, unknown>[]): this {
    this.afterSteps.push(...checked(middleware));
    this.#registry.dirty = true;
    return this;
  }

  group(options: RouteOptions<unknown, unknown> = {}): Group {
    checked(options.before ?? []);
    checked(options.after ?? []);
    return new Group(this.#registry, this, options);
  }

  // The route's full chain: the before-steps of every enclosing group from
  // the router's down, the route's own, the handler, then the after-steps in
  // the reverse nesting.
  chain(handler: AnyStep, before: AnyStep[], after: AnyStep[]): Chain {
    const outer: Group[] = [this];
    for (let g = this.parent; g !== undefined; g = g.parent) outer.unshift(g);
    const steps: AnyStep[] = [];
    for (const g of outer) steps.push(...g.beforeSteps);
    steps.push(...before);
    const handlerAt = steps.length;
    steps.push(handler, ...after);
    for (let i = outer.length - 1; i >= 0; i--) {
      steps.push(...outer[i]!.afterSteps);
    }
    return { steps, handlerAt };
  }
}

function checked<T>(middleware: T[]): T[] {
  for (const m of middleware) {
    if (typeof m !== "function") {
      throw new TypeError("Middleware must be a function");
    }
  }
  return middleware;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

// Runs a chain synchronously until a step returns a promise; only then does
// the rest continue in an async function. An all-sync chain allocates nothing.
function run(
  chain: Chain,
  session: unknown,
  message: unknown,
  key: string | undefined,
): void | Promise<void> {
  const steps = chain.steps;
  for (let i = 0; i < steps.length; i++) {
    const result = steps[i]!(session, message, key);
    if (result === false && i !== chain.handlerAt) return;
    if (isThenable(result)) {
      return runAsync(chain, i, result, session, message, key);
    }
  }
}

async function runAsync(
  chain: Chain,
  at: number,
  pending: PromiseLike<unknown>,
  session: unknown,
  message: unknown,
  key: string | undefined,
): Promise<void> {
  const steps = chain.steps;
  let result = await pending;
  if (result === false && at !== chain.handlerAt) return;
  for (let i = at + 1; i < steps.length; i++) {
    result = steps[i]!(session, message, key);
    if (isThenable(result)) result = await result;
    if (result === false && i !== chain.handlerAt) return;
  }
}

// The route key by the session's codec, when it has a rule; sessions
// without one (stand-ins in tests, custom codecs) get defaultRouteKey.
function codecRouteKey(session: unknown, message: unknown): string | undefined {
  const codec = typeof session === "object" && session !== null
    ? (session as { codec?: Codec<unknown, unknown> }).codec
    : undefined;
  return codec?.routeKey === undefined
    ? defaultRouteKey(message)
    : codec.routeKey(message);
}

function defaultFallback(
  _session: unknown,
  _message: unknown,
  key: string | undefined,
): never {
  throw new RouteNotFoundError(key);
}

/**
 * Dispatches each message to the handler registered for its key, with
 * middleware around it. The key comes from the `key` option, by default
 * {@linkcode defaultRouteKey} (the `type` field of JSON, the first word of a
 * text line, `action` or `module.method` of a microSocket message).
 *
 * **Order.** For a message whose key has a route: the router's before
 * middleware, each enclosing group's (outermost first), the route's own, the
 * handler, the route's after-middleware, then the groups' (innermost first),
 * then the router's. A message without a route runs the router's before
 * middleware, the fallback, and the router's after-middleware. Any
 * middleware returning `false` stops the message there; the session stays
 * open unless the middleware closes it.
 *
 * **Sync stays sync.** When every step of a message's chain returns without
 * a promise, {@linkcode Router.handler} returns `undefined` and allocates
 * nothing; from the first promise on, the rest of the chain is awaited in
 * order and `handler` returns a promise.
 *
 * **Errors.** The router never catches: whatever a handler or middleware
 * throws (or rejects with) is thrown (or rejected) by `handler`, and later
 * steps are skipped. Under `listen()` it reaches `onError(error, session)`
 * and the session keeps working; called directly, the caller handles it.
 *
 * **Types.** Routes are typed by `Routes` (by default {@linkcode RoutesOf}
 * `<Msg>`): for a union discriminated by `type`, `on("chat", h)` accepts only
 * the union's `type` values and `h` receives the matching member; use
 * {@linkcode RoutesBy} for another discriminant.
 *
 * @typeParam In The decoded message type (the codec's `In`).
 * @typeParam Out The type of messages sessions send (the codec's `Out`);
 * by default the same as `In`.
 * @typeParam S The session type handlers receive; by default
 * `Session<unknown, In, Out>` (give `Session<Data, In, Out>` to type
 * `session.data`).
 * @typeParam Routes The route table; see {@linkcode RoutesOf}.
 *
 * @example A typed JSON router as a server's message handler
 * ```ts
 * import { json, listen, Router } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * type Msg = { type: "chat"; text: string } | { type: "ping" };
 * const said = Promise.withResolvers<string>();
 * const router = new Router<Msg>()
 *   .on("chat", (_session, message) => said.resolve(message.text))
 *   .on("ping", (session) => void session.send({ type: "ping" }));
 *
 * await using server = listen({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   codec: json<Msg>(),
 *   onMessage: router.handler,
 * });
 * const { port } = server.addr;
 * using conn = await Deno.connect({ hostname: "127.0.0.1", port });
 * await conn.write(new TextEncoder().encode('{"type":"chat","text":"hi"}\n'));
 * assert.equal(await said.promise, "hi");
 * ```
 *
 * @example Text commands, a veto, and a fallback
 * ```ts
 * import { Router, type Session } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * const log: string[] = [];
 * const router = new Router<string, string, Session<{ name?: string }, string>>({
 *   fallback: (_session, line) => void log.push(`unknown: ${line}`),
 * })
 *   .before((session, _line, key) => key === "/nick" || session.data.name !== undefined)
 *   .on("/nick", (session, line, key) => {
 *     session.data.name = line.slice(key.length + 1);
 *   })
 *   .on("/say", (session, line, key) => {
 *     log.push(`${session.data.name}: ${line.slice(key.length + 1)}`);
 *   });
 *
 * const session = { data: {} } as Session<{ name?: string }, string>;
 * router.handler(session, "/say too early"); // vetoed: no name yet
 * router.handler(session, "/nick ada");
 * router.handler(session, "/say hi");
 * router.handler(session, "/dance");
 * assert.deepEqual(log, ["ada: hi", "unknown: /dance"]);
 * ```
 */
export class Router<
  In,
  Out = In,
  S = Session<unknown, In, Out>,
  Routes extends RouteTable<In> = RoutesOf<In>,
> implements RouteGroup<In, S, Routes> {
  readonly #registry: Registry = { entries: new Map(), dirty: true };
  readonly #root: Group;
  readonly #key: ((message: In) => string | undefined) | undefined;
  readonly #fallback: AnyStep;
  #compiled = new Map<string, Chain>();
  #fallbackChain: Chain = { steps: [], handlerAt: 0 };

  /**
   * Creates a router with no routes.
   *
   * @param options The key function and the fallback.
   * @throws {TypeError} When `key` or `fallback` is not a function.
   */
  constructor(options: RouterOptions<In, S> = {}) {
    const key = options.key;
    const fallback = options.fallback ?? defaultFallback;
    if (key !== undefined && typeof key !== "function") {
      throw new TypeError("Option key must be a function");
    }
    if (typeof fallback !== "function") {
      throw new TypeError("Option fallback must be a function");
    }
    this.#key = key;
    this.#fallback = fallback;
    this.#root = new Group(this.#registry, undefined, {});
  }

  /**
   * Handles one message: takes its key, then runs the route's chain (or the
   * fallback's). A stable function, bound to this router, to pass as
   * `onMessage` to `listen()` or a `Session`. Routes added later take effect
   * for later messages.
   *
   * @param session The session the message came from.
   * @param message The decoded message.
   * @returns `undefined` when the whole chain ran synchronously, otherwise
   * a promise that settles when it has finished.
   * @throws {unknown} Whatever a handler or middleware throws, including a
   * {@linkcode RouteNotFoundError} from the default fallback.
   */
  readonly handler: (session: S, message: In) => void | Promise<void> = (
    session,
    message,
  ) => {
    if (this.#registry.dirty) this.#compile();
    const key = this.#key === undefined
      ? codecRouteKey(session, message)
      : this.#key(message);
    const chain = key === undefined ? undefined : this.#compiled.get(key);
    return run(chain ?? this.#fallbackChain, session, message, key);
  };

  /**
   * Registers the handler of a route key. Each key has at most one route.
   *
   * @param key The route key, e.g. a `type` value.
   * @param handler Receives the session, the message (narrowed to the
   * route's type) and the key.
   * @param options Middleware of this route only.
   * @returns This router, for chaining.
   * @throws {TypeError} When the key already has a route, or the handler is
   * not a function.
   *
   * @example
   * ```ts
   * import { Router } from "@x/microsocket";
   * import assert from "node:assert/strict";
   *
   * const router = new Router<string>().on("PING", () => {});
   * assert.ok(router.has("PING"));
   * assert.throws(() => router.on("PING", () => {}), TypeError);
   * ```
   */
  on<K extends keyof Routes & string>(
    key: K,
    handler: RouteHandler<S, Routes[K]>,
    options?: RouteOptions<S, Routes[K]>,
  ): this {
    this.#root.on(
      key,
      handler as RouteHandler<unknown, unknown>,
      options as RouteOptions<unknown, unknown>,
    );
    return this;
  }

  /**
   * Adds middleware run before every message's handler (or fallback) —
   * the seed's `OnMessage` veto.
   *
   * @param middleware Middleware, in order; returning `false` stops the
   * message.
   * @returns This router, for chaining.
   * @throws {TypeError} When a middleware is not a function.
   *
   * @example Dropping messages from unnamed sessions
   * ```ts
   * import { Router, type Session } from "@x/microsocket";
   *
   * new Router<string, string, Session<{ name?: string }, string>>()
   *   .before((session) => session.data.name !== undefined);
   * ```
   */
  before(...middleware: Middleware<S, In>[]): this {
    this.#root.before(...(middleware as Middleware<unknown, unknown>[]));
    return this;
  }

  /**
   * Adds middleware run after every message's handler (or fallback), if it
   * completed without throwing and nothing stopped the message.
   *
   * @param middleware Middleware, in order; returning `false` skips the
   * ones after it.
   * @returns This router, for chaining.
   * @throws {TypeError} When a middleware is not a function.
   *
   * @example Counting handled messages
   * ```ts
   * import { Router } from "@x/microsocket";
   *
   * let handled = 0;
   * new Router<string>().after(() => void handled++);
   * ```
   */
  after(...middleware: Middleware<S, In>[]): this {
    this.#root.after(...(middleware as Middleware<unknown, unknown>[]));
    return this;
  }

  /**
   * Creates a group of routes that share middleware — the seed's module
   * with its `BeforeRequest` / `AfterRequest` hooks.
   *
   * @param options The group's middleware.
   * @returns The group; register its routes with its `on()`.
   * @throws {TypeError} When a middleware is not a function.
   *
   * @example A microSocket module
   * ```ts
   * import { type MicroSocketMessage, Router, type Session } from "@x/microsocket";
   * import assert from "node:assert/strict";
   *
   * const calls: string[] = [];
   * const router = new Router<MicroSocketMessage>();
   * router
   *   .group({
   *     before: [(_session, message) => message.token === "secret"],
   *     after: [() => void calls.push("after")],
   *   })
   *   .on("user.Login", (_session, message) => void calls.push(message.name!));
   *
   * const session = {} as Session<unknown, MicroSocketMessage>;
   * router.handler(session, { module: "user", method: "Login", name: "ada" });
   * router.handler(session, {
   *   module: "user", method: "Login", name: "bob", token: "secret",
   * });
   * assert.deepEqual(calls, ["bob", "after"]);
   * ```
   */
  group(options: RouteOptions<S, In> = {}): RouteGroup<In, S, Routes> {
    return this.#root.group(
      options as RouteOptions<unknown, unknown>,
    ) as unknown as RouteGroup<In, S, Routes>;
  }

  /**
   * Tells whether a key has a route.
   *
   * @param key A route key.
   * @returns `true` when `on(key, ...)` was called for it.
   *
   * @example
   * ```ts
   * import { Router } from "@x/microsocket";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Router<string>().has("PING"), false);
   * ```
   */
  has(key: string): boolean {
    return this.#registry.entries.has(key);
  }

  #compile(): void {
    const compiled = new Map<string, Chain>();
    for (const [key, entry] of this.#registry.entries) {
      compiled.set(
        key,
        entry.group.chain(entry.handler, entry.before, entry.after),
      );
    }
    this.#compiled = compiled;
    this.#fallbackChain = this.#root.chain(this.#fallback, [], []);
    this.#registry.dirty = false;
  }
}
