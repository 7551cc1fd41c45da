import Fastify, { type FastifyInstance } from "fastify";
import type { Metrics } from "../metrics/metrics.js";

export interface OpsServerOptions {
  host: string;
  port: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  metrics: Metrics;
  /** Why the instance is not ready, or undefined when it is (cache synced, certificate loaded). */
  notReady: () => string | undefined;
  /** Why the kubelet should restart the process (a leader duty that keeps failing to start), or undefined. */
  unhealthy?: () => string | undefined;
}

/** Plain HTTP on --server.bind: /metrics, /healthz (event loop alive, nothing stuck), /readyz. */
export async function startOpsServer(options: OpsServerOptions): Promise<{ port: number; close: () => Promise<void> }> {
  const app: FastifyInstance = Fastify({
    logger: false,
    connectionTimeout: options.readTimeoutMs + options.writeTimeoutMs,
    requestTimeout: options.readTimeoutMs,
  });
  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await options.metrics.scrape();
    return reply.type(contentType).send(body);
  });
  // Answering at all proves the event loop turns; a blocked loop makes the probe time out.
  app.get("/healthz", async (_request, reply) => {
    const reason = options.unhealthy?.();
    return reason ? reply.code(503).send({ status: "unhealthy", reason }) : { status: "ok" };
  });
  app.get("/readyz", async (_request, reply) => {
    const reason = options.notReady();
    return reason ? reply.code(503).send({ status: "not ready", reason }) : { status: "ready" };
  });
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  return { port: typeof address === "object" && address ? address.port : options.port, close: () => app.close() };
}
