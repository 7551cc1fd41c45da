// `azure-msi-operator audit`: reads the cluster (lists only) and Azure once, runs the leader's audit
// (src/audit/audit.ts) on it and prints what violates the tags. Nothing here writes. Run it before
// installing the webhooks, or in CI: exit 0 clean, 1 violations, 2 error.
import type { V1Namespace, V1ServiceAccount } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { FicApi } from "../azure/fic.js";
import type { Msi, SubscriptionListing } from "../azure/types.js";
import { audit, clientIdOf, type AuditAssignedIdentity, type AuditServiceAccount, type ListedFics } from "../audit/audit.js";
import { auditExitCode, auditJson, formatAudit } from "../audit/report.js";
import type { Config } from "../config/config.js";
import { desiredOptionsFrom } from "../duties/syncer.js";
import type { KubeClients } from "../kube/clients.js";
import { discoverIssuer } from "../kube/issuer.js";
import { AAD_GROUP, AAD_VERSION, AZURE_ASSIGNED_IDENTITIES, AZURE_IDENTITIES, AZURE_POD_IDENTITY_EXCEPTIONS, type AzureIdentity } from "../kube/resources.js";
import { desiredState } from "../syncer/desired.js";
import { clusterNameFor, ownedFicPrefix } from "../workload/names.js";
import { listAll, type Page } from "./read.js";

export interface AuditCommandDeps {
  config: Config;
  clients: KubeClients;
  listAzure: () => Promise<SubscriptionListing[]>;
  /** Workload identity mode: FICs are listed on every MSI of a complete subscription (what the check needs). */
  ficApi: FicApi | undefined;
  log: Logger;
  write: (text: string) => void;
}

/** Concurrent FIC listings (as many as the syncer's Azure listing runs at once). */
const FIC_CONCURRENCY = 4;

export async function runAudit({ config, clients, listAzure, ficApi, log, write }: AuditCommandDeps): Promise<number> {
  const aad = <T>(plural: string) =>
    listAll((params) => clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural, ...params }) as Promise<Page<T>>);
  const workload = config.workloadIdentity.enable && ficApi;
  const [namespaces, identities, assignedIdentities, exceptions, accounts] = await Promise.all([
    listAll<V1Namespace>((params) => clients.core.listNamespace(params)),
    aad<AzureIdentity>(AZURE_IDENTITIES),
    aad<AuditAssignedIdentity>(AZURE_ASSIGNED_IDENTITIES),
    aad<AzureIdentity>(AZURE_POD_IDENTITY_EXCEPTIONS),
    workload ? listAll<V1ServiceAccount>((params) => clients.core.listServiceAccountForAllNamespaces(params)) : Promise.resolve([]),
  ]);
  const listings = await listAzure();
  const msis = listings.flatMap((part) => part.identities);
  const complete = listings.filter((part) => part.complete).flatMap((part) => part.identities);
  const issuer = workload ? (config.workloadIdentity.issuer ?? (await discoverIssuer(clients))) : undefined;
  const fics = workload ? await listFics(ficApi, complete) : undefined;
  const violations = audit({
    identities,
    assignedIdentities,
    exceptions,
    ...(workload ? { serviceAccounts: clientIdAccounts(accounts) } : {}),
    ...(fics ? { fics } : {}),
    listing: {
      desired: desiredState(msis, desiredOptionsFrom(config)(new Date())),
      msis,
      subscriptions: listings.map((part) => ({
        subscriptionId: part.subscriptionId.toLowerCase(),
        complete: part.complete,
        ...(part.error ? { error: part.error.message } : {}),
      })),
    },
    options: {
      micForceNamespaced: config.audit.micForceNamespaced,
      micManagers: config.audit.micManagers,
      ...(issuer ? { workload: { issuer, ownedFicPrefix: ownedFicPrefix(config.workloadIdentity.cluster ?? clusterNameFor(issuer)) } } : {}),
    },
  });
  log.debug({ namespaces: namespaces.length, identities: identities.length, msis: msis.length }, "audited");
  write(config.output === "json" ? `${JSON.stringify(auditJson(violations), null, 2)}\n` : formatAudit(violations));
  return auditExitCode(violations);
}

function clientIdAccounts(accounts: readonly V1ServiceAccount[]): AuditServiceAccount[] {
  return accounts.flatMap((account) => {
    const clientId = clientIdOf(account.metadata?.annotations);
    return clientId ? [{ namespace: account.metadata?.namespace ?? "", name: account.metadata?.name ?? "", uid: account.metadata?.uid, clientId }] : [];
  });
}

/** The FICs of every MSI, a few at a time; one that cannot be listed fails the audit (exit 2): unknown is not clean. */
async function listFics(api: FicApi, msis: readonly Msi[]): Promise<ListedFics[]> {
  const out: ListedFics[] = [];
  let next = 0;
  const worker = async () => {
    while (next < msis.length) {
      const msi = msis[next++] as Msi;
      const ref = { subscriptionId: msi.subscriptionId, resourceGroup: msi.resourceGroup, name: msi.name };
      out.push({ msi: ref, fics: await api.list(ref) });
    }
  };
  await Promise.all(Array.from({ length: Math.min(FIC_CONCURRENCY, msis.length) }, worker));
  return out;
}
