/** Go's ":8080" means every interface; "::" is that for IPv6 and (dual-stack) IPv4 alike. */
export function listenHost(host: string | undefined): string {
  return host ?? "::";
}
