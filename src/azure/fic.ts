import type { AzureClients } from "./clients.js";
import type { FederatedCredential, MsiRef } from "./types.js";

/** The federated identity credentials of MSIs, through the real SDK (retries are its pipeline's). */
export interface FicApi {
  /** Every FIC on the MSI (all pages). */
  list(msi: MsiRef, signal?: AbortSignal): Promise<FederatedCredential[]>;
  put(msi: MsiRef, fic: FederatedCredential, signal?: AbortSignal): Promise<void>;
  remove(msi: MsiRef, name: string, signal?: AbortSignal): Promise<void>;
}

export function ficApi(clients: AzureClients): FicApi {
  const operations = (msi: MsiRef) => clients.msi(msi.subscriptionId).federatedIdentityCredentials;
  return {
    async list(msi, signal) {
      const found: FederatedCredential[] = [];
      for await (const fic of operations(msi).list(msi.resourceGroup, msi.name, { abortSignal: signal })) {
        if (fic.name && fic.issuer && fic.subject) found.push({ name: fic.name, issuer: fic.issuer, subject: fic.subject, audiences: fic.audiences ?? [] });
      }
      return found;
    },
    async put(msi, fic, signal) {
      await operations(msi).createOrUpdate(
        msi.resourceGroup,
        msi.name,
        fic.name,
        { issuer: fic.issuer, subject: fic.subject, audiences: fic.audiences },
        { abortSignal: signal },
      );
    },
    async remove(msi, name, signal) {
      await operations(msi).delete(msi.resourceGroup, msi.name, name, { abortSignal: signal });
    },
  };
}

/** The HTTP status of an SDK error (RestError.statusCode), if any. */
export function azureStatus(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}
