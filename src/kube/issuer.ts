import type { KubeClients } from "./clients.js";

/**
 * This cluster's service-account token issuer, from the API server's OIDC discovery document (what
 * AKS publishes as its OIDC issuer URL). Every authenticated caller may read it.
 */
export async function discoverIssuer(clients: KubeClients): Promise<string> {
  const document = await clients.wellKnown.getServiceAccountIssuerOpenIDConfiguration();
  const issuer = (JSON.parse(typeof document === "string" ? document : JSON.stringify(document)) as { issuer?: unknown }).issuer;
  if (typeof issuer !== "string" || !issuer.startsWith("https://")) {
    throw new Error(`the API server's /.well-known/openid-configuration has no https issuer (${JSON.stringify(issuer)}); set --workloadidentity.issuer`);
  }
  return issuer;
}
