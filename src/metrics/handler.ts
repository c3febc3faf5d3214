// An HTTP handler serving the Prometheus exposition, for Deno.serve.
import type { MetricsServers } from "./_collect.ts";
import { PROMETHEUS_CONTENT_TYPE, prometheusMetrics } from "./prometheus.ts";

/**
 * A `Deno.serve` handler answering `GET /metrics` (and `HEAD`) with
 * {@linkcode prometheusMetrics}, 404 on other paths and 405 on other
 * methods. Mount it on its own port, or call it from your own handler for
 * the `/metrics` path.
 *
 * @param servers One server, or several sharing a session manager.
 * @returns The handler.
 *
 * @example Serving /metrics next to a socket server
 * ```ts
 * import { listen, metricsHandler } from "@x/microsocket";
 * import assert from "node:assert/strict";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * await using http = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen: () => {} },
 *   metricsHandler(server),
 * );
 * const response = await fetch(`http://127.0.0.1:${http.addr.port}/metrics`);
 * assert.equal(response.status, 200);
 * assert.match(await response.text(), /microsocket_sessions/);
 * ```
 */
export function metricsHandler(
  servers: MetricsServers,
): (request: Request) => Response {
  return (request) => {
    if (new URL(request.url).pathname !== "/metrics") {
      return new Response("Not found\n", { status: 404 });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method not allowed\n", {
        status: 405,
        headers: { allow: "GET, HEAD" },
      });
    }
    return new Response(
      request.method === "HEAD" ? null : prometheusMetrics(servers),
      { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } },
    );
  };
}
