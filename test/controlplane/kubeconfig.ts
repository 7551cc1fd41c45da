import type { Pem } from "../../certs/pki.js";

export type Credentials = { clientCert: Pem } | { token: string };

/** A kubeconfig file's text for one user of the local API server (used by kubectl and client-node). */
export function kubeconfigYaml(server: string, caCert: string, user: string, credentials: Credentials): string {
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  const userFields =
    "token" in credentials
      ? { token: credentials.token }
      : { "client-certificate-data": b64(credentials.clientCert.cert), "client-key-data": b64(credentials.clientCert.key) };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "local", cluster: { server, "certificate-authority-data": b64(caCert) } }],
    users: [{ name: user, user: userFields }],
    contexts: [{ name: user, context: { cluster: "local", user } }],
    "current-context": user,
  };
  // JSON is valid YAML, and kubectl and client-node both read it.
  return JSON.stringify(config, null, 2);
}
