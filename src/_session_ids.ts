// Package-internal: session ids unique within a SessionManager. Servers
// that share a manager, and sessions adopted into one (native WebSockets),
// draw from the manager's counter, so ids never collide in its map.
import type { SessionManager } from "./session_manager.ts";

// deno-lint-ignore no-explicit-any
const counters = new WeakMap<SessionManager<any, any, any>, number>();

/** The next id for a session joining `manager`, from 1. */
// deno-lint-ignore no-explicit-any
export function nextSessionId(manager: SessionManager<any, any, any>): number {
  const next = counters.get(manager) ?? 1;
  counters.set(manager, next + 1);
  return next;
}
