import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CoreV1Api } from "@kubernetes/client-node";
import type { AccessToken } from "@azure/identity";
import { armScope, workloadIdentityCredential } from "../azure/sdk.js";
import type { FakeAzure, FakeIdentity } from "../azure/fake.js";

/**
 * What a pod on workload identity does: a projected token for its ServiceAccount (a real
 * TokenRequest to the API server, written to a file in `dir`), exchanged by the real
 * WorkloadIdentityCredential at the fake Entra for a token of the MSI, which Entra grants only
 * when the MSI has a FIC for that subject.
 */
export async function exchangeForMsiToken(
  core: CoreV1Api,
  fake: FakeAzure,
  dir: string,
  serviceAccount: { namespace: string; name: string },
  msi: FakeIdentity,
): Promise<AccessToken | null> {
  const { namespace, name } = serviceAccount;
  const answer = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: ["api://AzureADTokenExchange"], expirationSeconds: 3600 } },
  });
  const path = join(dir, `${namespace}-${name}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, answer.status?.token ?? "");
  return workloadIdentityCredential(fake, msi.clientId, path).getToken(armScope(fake));
}
