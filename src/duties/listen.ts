/** Go's ":8080" means every interface; "::" is that for IPv6 and (dual-stack) IPv4 alike. */
export function listenHost(host: string | undefined): string {
  return host ?? "::";
}

/**
 * A server that cannot listen (port in use, address not on this host) as one line that says which
 * server and where: the process exits on it, so the kubelet restarts the pod instead of leaving it
 * NotReady forever while /healthz says ok.
 */
export class ListenError extends Error {
  constructor(server: string, host: string, port: number, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code;
    const reason = code === "EADDRINUSE" ? "address already in use" : code === "EADDRNOTAVAIL" ? "address not available" : (cause as Error).message;
    super(`${server} cannot listen on ${host.includes(":") ? `[${host}]` : host}:${port}: ${reason}`, { cause });
    this.name = "ListenError";
  }
}
