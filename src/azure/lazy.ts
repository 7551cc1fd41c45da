import type { AzureClientOptions, AzureClients } from "./clients.js";
import type { FicApi } from "./fic.js";
import type { ListingOptions } from "./listing.js";
import type { SubscriptionListing } from "./types.js";

/** What the leader does with Azure: list the MSIs, and keep their federated credentials. */
export interface AzureAccess {
  listManagedIdentities(options: ListingOptions): Promise<SubscriptionListing[]>;
  fic: FicApi;
}

/**
 * The Azure SDK (identity, two ARM clients, their pipelines: ~40 MiB resident once loaded) is
 * imported on first use, not at start-up: only the Lease holder lists Azure, so a follower never
 * loads it. The clients are then built once and kept; a failed load is tried again next time.
 */
export function lazyAzure(options: AzureClientOptions): AzureAccess {
  let clients: Promise<AzureClients> | undefined;
  const load = (): Promise<AzureClients> =>
    (clients ??= import("./clients.js")
      .then((module) => module.createAzureClients(options))
      .catch((error: unknown) => {
        clients = undefined;
        throw error;
      }));
  const fic = async () => (await import("./fic.js")).ficApi(await load());
  return {
    async listManagedIdentities(listing) {
      const { listManagedIdentities } = await import("./listing.js");
      return listManagedIdentities(await load(), listing);
    },
    fic: {
      list: async (msi, signal) => (await fic()).list(msi, signal),
      put: async (msi, credential, signal) => (await fic()).put(msi, credential, signal),
      remove: async (msi, name, signal) => (await fic()).remove(msi, name, signal),
    },
  };
}
