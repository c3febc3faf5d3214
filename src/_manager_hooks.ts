// Package-internal: how the server attaches a cluster bridge to its
// SessionManager without a public method for it. session_manager.ts fills
// this in from a static block, which can reach the manager's private fields.
// Managers are typed as `object` here so that this file, which the manager
// imports, does not import the manager back.
import type { ClusterBridge, ClusterLink } from "./cluster_bridge.ts";
import type { Codec } from "./codec/codec.ts";

/** Entry points into SessionManager, set by session_manager.ts. */
export const managerHooks: {
  /**
   * Routes the manager's room traffic and unknown ids through `bridge`;
   * returns the link that delivers the other nodes' frames here.
   */
  bridge(
    manager: object,
    bridge: ClusterBridge,
    // deno-lint-ignore no-explicit-any
    codec: Codec<any, any>,
  ): ClusterLink;
  /**
   * The bridge a server attached to `manager` (a SessionManager), if any:
   * another server that shares the manager makes its session ids with it.
   */
  bridgeOf(manager: object): ClusterBridge | undefined;
} = {
  bridge: () => {
    throw new Error("manager hooks used before session_manager.ts loaded");
  },
  bridgeOf: () => undefined,
};
