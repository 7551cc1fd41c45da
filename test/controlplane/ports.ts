import { createServer, type Server } from "node:net";

/**
 * Ports for programs that must be told one before they start (etcd, kube-apiserver, a webhook URL
 * registered before the operator listens). What we start ourselves binds :0 and reports its port
 * instead; nothing here can make a told port safe, so the two rules that matter are:
 *
 * - never hand out the same port twice in one process: the kernel gives a just-released port out
 *   again, which once gave etcd the port kube-apiserver had been told;
 * - a boot that still meets "address already in use" (another process took the port meanwhile) is
 *   retried with fresh ports: `withFreshPorts`.
 */
export class PortAllocator {
  private readonly handedOut = new Set<number>();

  /** `listen` binds some free loopback port; tests replace it with a kernel that repeats itself. */
  constructor(private readonly listen: () => Promise<Server> = listenOnAnyPort) {}

  /** A loopback port free right now and never returned before by this allocator. */
  async reserve(): Promise<number> {
    // A repeated port stays bound while we ask again, so the kernel cannot offer it a second time.
    const held: Server[] = [];
    try {
      for (let attempt = 0; attempt < 100; attempt++) {
        const server = await this.listen();
        held.push(server);
        const port = portOf(server);
        if (this.handedOut.has(port)) continue;
        this.handedOut.add(port);
        return port;
      }
      throw new Error(`no fresh loopback port after 100 binds (handed out so far: ${this.handedOut.size})`);
    } finally {
      await Promise.all(held.map(close));
    }
  }

  async reserveMany(count: number): Promise<number[]> {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await this.reserve());
    return ports;
  }
}

/** The allocator every test, bench and demo helper of one process shares. */
export const ports = new PortAllocator();

export const reservePort = (): Promise<number> => ports.reserve();

/** Thrown by a boot that found one of its ports taken; `withFreshPorts` retries on it. */
export class AddressInUseError extends Error {
  override readonly name = "AddressInUseError";
}

/** Go's and Node's words for a failed bind: "bind: address already in use", EADDRINUSE. */
export function isAddressInUse(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof AddressInUseError) return true;
    if ((cause as NodeJS.ErrnoException).code === "EADDRINUSE") return true;
    if (/address already in use/i.test(cause.message)) return true;
  }
  return false;
}

/**
 * Boots with `count` fresh ports, and again with fresh ones while the boot fails because a port was
 * taken (up to `attempts` boots). Any other failure is thrown at once. `boot` must clean up after
 * itself when it fails.
 */
export async function withFreshPorts<T>(
  count: number,
  boot: (ports: number[], attempt: number) => Promise<T>,
  options: { allocator?: PortAllocator; attempts?: number } = {},
): Promise<T> {
  const allocator = options.allocator ?? ports;
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      return await boot(await allocator.reserveMany(count), attempt);
    } catch (error) {
      if (attempt >= attempts || !isAddressInUse(error)) throw error;
    }
  }
}

function listenOnAnyPort(): Promise<Server> {
  return listenOn(0);
}

/** A loopback TCP server on `port` (0: any). */
export function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

export function portOf(server: Server): number {
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("server has no TCP address");
  return address.port;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
