// Package-internal: session ids unique within a SessionManager. Servers
// that share a manager, and sessions adopted into one (native WebSockets),
// draw from the manager's counter, so ids never collide in its map; when a
// server joined the manager to a cluster, they all draw from the cluster's
// node instead, so ids are unique across the cluster.
import type { SessionManager } from "./session_manager.ts";
import { managerHooks } from "./_manager_hooks.ts";

// deno-lint-ignore no-explicit-any
const counters = new WeakMap<SessionManager<any, any, any>, number>();

/** The next id for a session joining `manager`: the cluster's, else from 1. */
// deno-lint-ignore no-explicit-any
export function nextSessionId(manager: SessionManager<any, any, any>): number {
  const bridge = managerHooks.bridgeOf(manager);
  if (bridge !== undefined) return bridge.nextSessionId();
  const next = counters.get(manager) ?? 1;
  counters.set(manager, next + 1);
  return next;
}
