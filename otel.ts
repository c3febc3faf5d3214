/**
 * OpenTelemetry metrics for microsocket servers: {@linkcode instrumentMetrics}
 * registers observable instruments (via `npm:@opentelemetry/api`) that read
 * the same counters as the core's Prometheus text, and
 * {@linkcode instrumentClusterMetrics} those of a cluster node (as
 * `clusterMetrics()`). A separate entry point so
 * the core stays dependency-free. With `OTEL_DENO=true deno run …`, Deno's
 * own MeterProvider exports them over OTLP with no further setup.
 *
 * @example
 * ```ts
 * import { listen } from "@x/microsocket";
 * import { instrumentMetrics } from "@x/microsocket/otel";
 *
 * await using server = listen({ hostname: "127.0.0.1", port: 0 });
 * using _metrics = instrumentMetrics(server);
 * ```
 *
 * @module
 */
export * from "./src/metrics/otel.ts";
export * from "./src/metrics/otel_cluster.ts";
export type { MetricsServers } from "./src/metrics/_collect.ts";
