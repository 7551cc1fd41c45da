import { generateKeyPairSync } from "node:crypto";
import { generateCa, issueCert, type Pem } from "../../certs/pki.js";

const YEAR_MS = 365 * 86_400_000;

/** Who the tests act as: a cluster admin, a developer, and (token-based) the operator. */
export const ADMIN = { user: "admin", groups: ["system:masters"] } as const;
export const DEVELOPER = { user: "jane", groups: ["dev-team"] } as const;

export interface ControlPlanePki {
  ca: Pem;
  serving: Pem;
  admin: Pem;
  developer: Pem;
  serviceAccount: { privateKey: string; publicKey: string };
}

/** Everything a fresh API server needs, as envtest makes it: one CA, a serving cert, client certs. */
export async function makeControlPlanePki(): Promise<ControlPlanePki> {
  const ca = await generateCa("azure-msi-operator test control plane", YEAR_MS);
  const [serving, admin, developer] = await Promise.all([
    issueCert(ca, {
      commonName: "kube-apiserver",
      usage: "server",
      dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
      ipAddresses: ["127.0.0.1"],
      validityMs: YEAR_MS,
    }),
    issueCert(ca, { commonName: ADMIN.user, organizations: [...ADMIN.groups], usage: "client", validityMs: YEAR_MS }),
    issueCert(ca, { commonName: DEVELOPER.user, organizations: [...DEVELOPER.groups], usage: "client", validityMs: YEAR_MS }),
  ]);
  const keys = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    ca,
    serving,
    admin,
    developer,
    serviceAccount: {
      privateKey: keys.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      publicKey: keys.publicKey.export({ type: "spki", format: "pem" }).toString(),
    },
  };
}
