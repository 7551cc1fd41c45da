import { connect, createServer, type Server, type Socket } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

/**
 * A TCP forwarder the test owns: as a load balancer in front of several replicas (what a Service
 * does in a cluster), or as the one link between an operator and the API server that a test cuts.
 */
export class TcpProxy {
  private readonly connections = new Set<Socket>();
  private readonly pairs = new Set<[Socket, Socket]>();
  private readonly frozen = new Set<Socket>();
  private cut = false;
  private holeActive = false;
  private constructor(
    private readonly server: Server,
    private readonly pick: () => number | undefined,
  ) {}

  /** `pick` chooses the target port per connection (undefined: refuse it). */
  static async start(pick: () => number | undefined, port = 0): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server, pick);
    server.on("connection", (client) => proxy.forward(client));
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  private forward(client: Socket): void {
    if (this.holeActive) {
      // Accepted and then ignored: what a client sees when packets are dropped, not refused.
      this.frozen.add(client);
      client.on("error", () => undefined);
      client.on("close", () => this.frozen.delete(client));
      client.pause();
      return;
    }
    const target = this.cut ? undefined : this.pick();
    if (target === undefined) {
      client.destroy();
      return;
    }
    const upstream = connect(target, "127.0.0.1");
    for (const socket of [client, upstream]) {
      this.connections.add(socket);
      socket.on("close", () => this.connections.delete(socket));
      socket.on("error", () => undefined);
    }
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    // A frozen pair passes nothing on, not even a close: the other side never learns.
    client.on("close", () => {
      if (this.pairs.delete(pair)) upstream.destroy();
    });
    upstream.on("close", () => {
      if (this.pairs.delete(pair)) client.destroy();
    });
  }

  /** Drops every connection and refuses new ones: a network partition. */
  partition(): void {
    this.cut = true;
    for (const socket of this.connections) socket.destroy();
  }

  /**
   * Existing connections go silent (open, nothing forwarded either way), as after a NAT or
   * load-balancer timeout; new connections still work.
   */
  freeze(): void {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      this.frozen.add(client).add(upstream);
    }
    this.pairs.clear();
  }

  /**
   * A black hole: established connections go silent (as freeze()) and new ones are accepted but never
   * answered, nothing reset, nothing closed; a client learns only from its own deadlines. heal() ends it
   * for new connections (the silent ones stay silent, as after a real outage).
   */
  blackhole(): void {
    this.holeActive = true;
    this.freeze();
  }

  heal(): void {
    this.cut = false;
    this.holeActive = false;
  }

  async close(): Promise<void> {
    this.holeActive = false;
    this.partition();
    for (const socket of this.frozen) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** `direct` with every cluster's server pointed at 127.0.0.1:`port` (a TcpProxy in front of the API server). */
export function kubeConfigVia(direct: KubeConfig, port: number): KubeConfig {
  const via = new KubeConfig();
  via.loadFromOptions({
    clusters: direct.clusters.map((cluster) => ({ ...cluster, server: `https://127.0.0.1:${port}` })),
    users: direct.users,
    contexts: direct.contexts,
    currentContext: direct.currentContext,
  });
  return via;
}
