import type { V1Secret } from "@kubernetes/client-node";
import type { CertState } from "./state.js";

const CHANGED_BUNDLE = "azure-msi-operator.io/ca-bundle-changed-at";
const CHANGED_LEAF = "azure-msi-operator.io/serving-cert-changed-at";
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const b64 = (text: string) => Buffer.from(text).toString("base64");
const unb64 = (text: string | undefined) => (text === undefined ? undefined : Buffer.from(text, "base64").toString("utf8"));

/** The Secret that carries a CertState (data keys in the usual tls.crt / ca.crt style). */
export function stateToSecret(name: string, namespace: string, state: CertState, resourceVersion?: string): V1Secret {
  const data: Record<string, string> = {
    "ca.crt": b64(state.ca.cert),
    "ca.key": b64(state.ca.key),
    "tls.crt": b64(state.leaf.cert),
    "tls.key": b64(state.leaf.key),
    "ca-bundle.crt": b64(state.bundle.join("\n")),
  };
  if (state.next) {
    data["ca-next.crt"] = b64(state.next.cert);
    data["ca-next.key"] = b64(state.next.key);
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "Opaque",
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { "app.kubernetes.io/managed-by": "azure-msi-operator" },
      annotations: { [CHANGED_BUNDLE]: new Date(state.bundleChangedAt).toISOString(), [CHANGED_LEAF]: new Date(state.leafChangedAt).toISOString() },
    },
    data,
  };
}

export type ParsedSecret = { ok: true; state: CertState } | { ok: false; error: string };

/** Reads a CertState back; a Secret someone broke is reported, not trusted. */
export function secretToState(secret: V1Secret): ParsedSecret {
  const data = secret.data ?? {};
  const field = (key: string) => unb64(data[key]);
  const required = ["ca.crt", "ca.key", "tls.crt", "tls.key"];
  const missing = required.filter((key) => !field(key));
  if (missing.length > 0) return { ok: false, error: `missing ${missing.join(", ")}` };
  const bundle = (field("ca-bundle.crt") ?? field("ca.crt")!).match(PEM_BLOCK) ?? [];
  const nextCert = field("ca-next.crt");
  const nextKey = field("ca-next.key");
  const annotations = secret.metadata?.annotations ?? {};
  const time = (key: string) => {
    const parsed = Date.parse(annotations[key] ?? "");
    return Number.isFinite(parsed) ? parsed : 0;
  };
  return {
    ok: true,
    state: {
      ca: { cert: field("ca.crt")!, key: field("ca.key")! },
      leaf: { cert: field("tls.crt")!, key: field("tls.key")! },
      bundle,
      ...(nextCert && nextKey ? { next: { cert: nextCert, key: nextKey } } : {}),
      bundleChangedAt: time(CHANGED_BUNDLE),
      leafChangedAt: time(CHANGED_LEAF),
    },
  };
}

/** Serving cert and key only: what every replica needs from the Secret. */
export function servingPemFromSecret(secret: V1Secret): { cert: string; key: string } | undefined {
  const cert = unb64(secret.data?.["tls.crt"]);
  const key = unb64(secret.data?.["tls.key"]);
  return cert && key ? { cert, key } : undefined;
}
