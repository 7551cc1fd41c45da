import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP forwarder the test owns: as a load balancer in front of several replicas (what a Service
 * does in a cluster), or as the one link between an operator and the API server that a test cuts.
 */
export class TcpProxy {
  private readonly connections = new Set<Socket>();
  private cut = false;
  private constructor(
    private readonly server: Server,
    private readonly pick: () => number | undefined,
  ) {}

  /** `pick` chooses the target port per connection (undefined: refuse it). */
  static async start(pick: () => number | undefined, port = 0): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy!.forward(client));
    proxy = new TcpProxy(server, pick);
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  private forward(client: Socket): void {
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
    client.pipe(upstream).on("close", () => client.destroy());
    upstream.pipe(client).on("close", () => upstream.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  /** Drops every connection and refuses new ones: a network partition. */
  partition(): void {
    this.cut = true;
    for (const socket of this.connections) socket.destroy();
  }

  heal(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
