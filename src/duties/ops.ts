import type { Config } from "../config/config.js";
import type { Duty } from "../lifecycle/duty.js";
import type { Metrics } from "../metrics/metrics.js";
import { startOpsServer } from "../ops/server.js";
import { ListenError, listenHost } from "./listen.js";

/** /metrics, /healthz and /readyz on --server.bind: the first thing up and the last one down. */
export class OpsDuty implements Duty {
  readonly name = "ops server";
  private server: { port: number; close: () => Promise<void> } | undefined;

  constructor(
    private readonly config: Config,
    private readonly metrics: Metrics,
    private readonly notReady: () => string | undefined,
    private readonly unhealthy: () => string | undefined = () => undefined,
  ) {}

  get port(): number | undefined {
    return this.server?.port;
  }

  async start(): Promise<void> {
    const { server } = this.config;
    const host = listenHost(server.bind.host);
    // Failing here fails start-up, and the process exits non-zero with this line.
    this.server = await startOpsServer({
      host,
      port: server.bind.port,
      readTimeoutMs: server.readTimeoutMs,
      writeTimeoutMs: server.writeTimeoutMs,
      metrics: this.metrics,
      notReady: this.notReady,
      unhealthy: this.unhealthy,
    }).catch((error: unknown) => {
      throw new ListenError("ops server (--server.bind)", host, server.bind.port, error);
    });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }
}
