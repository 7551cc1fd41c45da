// `azure-msi-operator diff`: reads the cluster (lists only) and Azure once, prints what a sync would
// write, and returns kubectl diff's exit code. Nothing here writes to Kubernetes or Azure.
import type { Logger } from "pino";
import type { FicApi } from "../azure/fic.js";
import { mapLimited } from "../azure/listing.js";
import type { SubscriptionListing } from "../azure/types.js";
import type { Config } from "../config/config.js";
import { desiredOptionsFrom } from "../duties/syncer.js";
import type { KubeClients } from "../kube/clients.js";
import { discoverIssuer } from "../kube/issuer.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import { AAD_GROUP, AAD_VERSION, AZURE_IDENTITIES, AZURE_IDENTITY_BINDINGS, type AzureIdentity, type AzureIdentityBinding } from "../kube/resources.js";
import type { DesiredState } from "../model/desired.js";
import { desiredState } from "../syncer/desired.js";
import { formatPreview, previewExitCode, previewSync, type Preview } from "../syncer/preview.js";
import { clusterNameFor } from "../workload/names.js";
import { labelledServiceAccount } from "../workload/plan.js";
import { ficChangeCount, ficTargets, formatFicPreview, previewFics, type FicPreview, type MsiFicListing } from "../workload/preview.js";
import { listAll, type Page } from "./read.js";

export interface DiffDeps {
  config: Config;
  clients: KubeClients;
  listAzure: () => Promise<SubscriptionListing[]>;
  /** Federated identity credentials (workload identity mode): only list() is called. */
  ficApi?: FicApi | undefined;
  log: Logger;
  write: (text: string) => void;
}

/** What `diff --output=json` prints: the AzureIdentity preview, and with --workloadidentity.enable the FIC plan. */
export type DiffReport = Preview & { fics?: FicPreview };

/** 0: a sync would write nothing; 1: it would write (printed); 2: the preview is not trustworthy (an error or an incomplete listing). */
export async function runDiff({ config, clients, listAzure, ficApi, log, write }: DiffDeps): Promise<number> {
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
  const desiredOptions = desiredOptionsFrom(config)(new Date());
  const preview = previewSync({
    listings,
    desiredOptions,
    prune: config.azureIdentity.prune,
    bindingKeys,
    namespaces,
    identities,
    bindings,
  });
  let fics: FicPreview | undefined;
  if (config.workloadIdentity.enable) {
    if (!ficApi || !keys) log.warn("workload identity mode needs lookup labels (--kubernetes.label.format): no FICs previewed");
    else
      fics = await previewWorkload(
        config,
        clients,
        ficApi,
        listings,
        desiredState(
          listings.flatMap((part) => part.identities),
          desiredOptions,
        ),
      );
  }
  const report: DiffReport = { ...preview, ...(fics ? { fics } : {}) };
  write(config.output === "json" ? `${JSON.stringify(report, null, 2)}\n` : formatPreview(preview) + (fics ? formatFicPreview(fics) : ""));
  if (preview.incompleteSubscriptions.length > 0) {
    log.error({ subscriptions: preview.incompleteSubscriptions }, "Azure listing incomplete: the diff may miss changes");
    return 2;
  }
  if (fics && fics.errors.length > 0) {
    log.error({ msis: fics.errors.map((error) => error.msi) }, "federated identity credentials of some MSIs could not be listed: the diff may miss changes");
    return 2;
  }
  return Math.max(previewExitCode(preview), fics && ficChangeCount(fics) > 0 ? 1 : 0);
}

/**
 * The FIC controller's plan for every MSI a full sync would look at, from the ServiceAccounts as
 * listed now and one read (GET) of each MSI's FICs. The issuer and cluster name are found as the
 * leader finds them.
 */
async function previewWorkload(
  config: Config,
  clients: KubeClients,
  ficApi: FicApi,
  listings: readonly SubscriptionListing[],
  desired: DesiredState,
): Promise<FicPreview> {
  const lookupKeys = lookupLabelKeys(config.kubernetes.labelFormat)!;
  const { workloadIdentity } = config;
  const issuer = workloadIdentity.issuer ?? (await discoverIssuer(clients));
  const context = {
    issuer,
    cluster: workloadIdentity.cluster ?? clusterNameFor(issuer),
    lookupKeys,
    previousClusters: workloadIdentity.previousClusters,
    namespaceCap: workloadIdentity.ficNamespaceCap,
  };
  const serviceAccounts = (await listAll((params) => clients.core.listServiceAccountForAllNamespaces(params))).map(labelledServiceAccount);
  const complete = listings.every((part) => part.complete);
  const msis = listings.flatMap((part) => part.identities);
  const scan = listings
    .filter((part) => part.complete)
    .flatMap((part) => part.identities.map(({ subscriptionId, resourceGroup, name }) => ({ subscriptionId, resourceGroup, name })));
  const targets = ficTargets(serviceAccounts, desired, context, scan);
  const listed = await mapLimited([...targets.targets.values()], config.sync.concurrency, (msi): Promise<MsiFicListing> =>
    ficApi.list(msi).then(
      (fics) => ({ msi, fics }),
      (error: unknown) => ({ msi, error: (error as Error).message }),
    ),
  );
  return previewFics({ targets, listed, serviceAccounts, context, complete: complete && msis.length > 0 });
}
