// `azure-msi-operator diff`: reads the cluster (lists only) and Azure once, prints what a sync would
// write, and returns kubectl diff's exit code. Nothing here writes to Kubernetes or Azure.
import type { Logger } from "pino";
import type { SubscriptionListing } from "../azure/types.js";
import type { Config } from "../config/config.js";
import { desiredOptionsFrom } from "../duties/syncer.js";
import type { KubeClients } from "../kube/clients.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import { AAD_GROUP, AAD_VERSION, AZURE_IDENTITIES, AZURE_IDENTITY_BINDINGS, type AzureIdentity, type AzureIdentityBinding } from "../kube/resources.js";
import { formatPreview, previewExitCode, previewSync } from "../syncer/preview.js";

export interface Page<T> {
  items: T[];
  metadata?: { _continue?: string; continue?: string };
}

export async function listAll<T>(list: (params: { limit: number; _continue?: string }) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page = await list({ limit: 500, ...(token ? { _continue: token } : {}) });
    items.push(...page.items);
    token = page.metadata?._continue ?? page.metadata?.continue ?? undefined;
  } while (token);
  return items;
}

export interface DiffDeps {
  config: Config;
  clients: KubeClients;
  listAzure: () => Promise<SubscriptionListing[]>;
  log: Logger;
  write: (text: string) => void;
}

/** 0: a sync would write nothing; 1: it would write (printed); 2: the preview is not trustworthy (an error or an incomplete listing). */
export async function runDiff({ config, clients, listAzure, log, write }: DiffDeps): Promise<number> {
  const keys = lookupLabelKeys(config.kubernetes.labelFormat);
  const bindingKeys = config.azureIdentity.bindingSync ? keys : undefined;
  const [namespaces, identities, bindings] = await Promise.all([
    listAll((params) => clients.core.listNamespace(params)),
    listAll(
      (params) =>
        clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural: AZURE_IDENTITIES, ...params }) as Promise<Page<AzureIdentity>>,
    ),
    bindingKeys
      ? listAll(
          (params) =>
            clients.custom.listClusterCustomObject({
              group: AAD_GROUP,
              version: AAD_VERSION,
              plural: AZURE_IDENTITY_BINDINGS,
              labelSelector: [bindingKeys.name, bindingKeys.resourcegroup, bindingKeys.subscription].join(","),
              ...params,
            }) as Promise<Page<AzureIdentityBinding>>,
        )
      : Promise.resolve([]),
  ]);
  const listings = await listAzure();
  const preview = previewSync({
    listings,
    desiredOptions: desiredOptionsFrom(config)(new Date()),
    prune: config.azureIdentity.prune,
    bindingKeys,
    namespaces,
    identities,
    bindings,
  });
  write(config.output === "json" ? `${JSON.stringify(preview, null, 2)}\n` : formatPreview(preview));
  if (preview.incompleteSubscriptions.length > 0) {
    log.error({ subscriptions: preview.incompleteSubscriptions }, "Azure listing incomplete: the diff may miss changes");
    return 2;
  }
  return previewExitCode(preview);
}
