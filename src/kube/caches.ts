import type { KubernetesObject, V1Lease, V1Namespace, V1ServiceAccount } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Metrics } from "../metrics/metrics.js";
import type { KubeClients } from "./clients.js";
import { Informer } from "./informer.js";
import { lookupLabelKeys } from "./lookup.js";
import {
  AAD_GROUP,
  AAD_VERSION,
  AZURE_ASSIGNED_IDENTITIES,
  AZURE_IDENTITIES,
  AZURE_IDENTITY_BINDINGS,
  AZURE_POD_IDENTITY_EXCEPTIONS,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OWNED_SELECTOR,
  WI_CLIENT_ID_ANNOTATION,
  type AzureAssignedIdentity,
  type AzureIdentity,
  type AzureIdentityBinding,
  type AzurePodIdentityException,
} from "./resources.js";

export interface CacheOptions {
  watchTimeoutSeconds?: number;
}

function onError(resource: string, log: Logger, metrics: Metrics) {
  return (error: Error, context: string) => {
    metrics.cacheRestarts.inc({ resource });
    log.warn({ resource, context, err: error.message }, "cache watch failed; re-listing");
  };
}

/** Operator-owned AzureIdentities (label selector on the ownership marker): every replica keeps this one. */
export function ownedIdentities(clients: KubeClients, log: Logger, metrics: Metrics, options: CacheOptions = {}): Informer<AzureIdentity> {
  const informer = new Informer<AzureIdentity>(clients.kubeConfig, {
    path: `/apis/${AAD_GROUP}/${AAD_VERSION}/${AZURE_IDENTITIES}`,
    labelSelector: OWNED_SELECTOR,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) =>
      clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural: AZURE_IDENTITIES, ...params }) as Promise<{
        items: AzureIdentity[];
      }>,
    onError: onError(AZURE_IDENTITIES, log, metrics),
  });
  trackSize(informer, AZURE_IDENTITIES, metrics);
  return informer;
}

export function namespaces(clients: KubeClients, log: Logger, metrics: Metrics, options: CacheOptions = {}): Informer<V1Namespace> {
  const informer = new Informer<V1Namespace>(clients.kubeConfig, {
    path: "/api/v1/namespaces",
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) => clients.core.listNamespace(params),
    onError: onError("namespaces", log, metrics),
  });
  trackSize(informer, "namespaces", metrics);
  return informer;
}

/**
 * The one leader Lease (field selector on its name, so RBAC can limit list and watch to it by
 * resourceNames): followers learn at once that it was released instead of at their next retry.
 */
export function leaderLease(
  clients: KubeClients,
  namespace: string,
  name: string,
  log: Logger,
  metrics: Metrics,
  options: CacheOptions = {},
): Informer<V1Lease> {
  return new Informer<V1Lease>(clients.kubeConfig, {
    path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
    fieldSelector: `metadata.name=${name}`,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) => clients.coordination.listNamespacedLease({ namespace, ...params }),
    onError: onError("leases", log, metrics),
  });
}

/** Only bindings that carry all three lookup labels (an existence selector): the rest are not ours to touch. */
export function lookupBindings(
  clients: KubeClients,
  labelFormat: string,
  log: Logger,
  metrics: Metrics,
  options: CacheOptions = {},
): Informer<AzureIdentityBinding> | undefined {
  const keys = lookupLabelKeys(labelFormat);
  if (!keys) return undefined;
  const informer = new Informer<AzureIdentityBinding>(clients.kubeConfig, {
    path: `/apis/${AAD_GROUP}/${AAD_VERSION}/${AZURE_IDENTITY_BINDINGS}`,
    labelSelector: [keys.name, keys.resourcegroup, keys.subscription].join(","),
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) =>
      clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural: AZURE_IDENTITY_BINDINGS, ...params }) as Promise<{
        items: AzureIdentityBinding[];
      }>,
    onError: onError(AZURE_IDENTITY_BINDINGS, log, metrics),
  });
  trackSize(informer, AZURE_IDENTITY_BINDINGS, metrics);
  return informer;
}

/** ServiceAccounts with all three lookup labels (workload identity mode): the rest are not ours to look at. */
export function lookupServiceAccounts(
  clients: KubeClients,
  labelFormat: string,
  log: Logger,
  metrics: Metrics,
  options: CacheOptions = {},
): Informer<V1ServiceAccount> | undefined {
  const keys = lookupLabelKeys(labelFormat);
  if (!keys) return undefined;
  const labelSelector = [keys.name, keys.resourcegroup, keys.subscription].join(",");
  const informer = new Informer<V1ServiceAccount>(clients.kubeConfig, {
    path: "/api/v1/serviceaccounts",
    labelSelector,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) => clients.core.listServiceAccountForAllNamespaces(params),
    onError: onError("serviceaccounts", log, metrics),
  });
  trackSize(informer, "serviceaccounts", metrics);
  return informer;
}

/** A cluster-wide cache of one aadpodidentity.k8s.io kind. */
function aadCache<T extends KubernetesObject>(
  clients: KubeClients,
  plural: string,
  log: Logger,
  metrics: Metrics,
  options: CacheOptions,
  extra: { labelSelector?: string; transform?: (object: T) => T } = {},
): Informer<T> {
  const informer = new Informer<T>(clients.kubeConfig, {
    path: `/apis/${AAD_GROUP}/${AAD_VERSION}/${plural}`,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    ...extra,
    list: (params) => clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural, ...params }) as Promise<{ items: T[] }>,
    onError: onError(extra.labelSelector ? `${plural} (${extra.labelSelector})` : plural, log, metrics),
  });
  trackSize(informer, extra.labelSelector ? `${plural}-unowned` : plural, metrics);
  return informer;
}

/**
 * The audit's caches (the leader's, one term each): AzureIdentities the operator does not own (the
 * owned ones are every replica's cache already), AzureAssignedIdentities slimmed to what the audit
 * reads (their spec embeds a whole identity and binding), exceptions, and in workload identity mode
 * every ServiceAccount slimmed to its client-id annotation.
 */
export function auditCaches(clients: KubeClients, log: Logger, metrics: Metrics, options: CacheOptions, workloadIdentity: boolean) {
  return {
    unowned: aadCache<AzureIdentity>(clients, AZURE_IDENTITIES, log, metrics, options, { labelSelector: `${MANAGED_BY_LABEL}!=${MANAGED_BY_VALUE}` }),
    assigned: aadCache<AzureAssignedIdentity>(clients, AZURE_ASSIGNED_IDENTITIES, log, metrics, options, { transform: slimAssigned }),
    exceptions: aadCache<AzurePodIdentityException>(clients, AZURE_POD_IDENTITY_EXCEPTIONS, log, metrics, options),
    serviceAccounts: workloadIdentity ? clientIdServiceAccounts(clients, log, metrics, options) : undefined,
  };
}

const refOf = (ref: { metadata?: { name?: string; namespace?: string } } | null | undefined) =>
  ref ? { metadata: { name: ref.metadata?.name ?? "", namespace: ref.metadata?.namespace ?? "" } } : ref;

function slimAssigned(object: AzureAssignedIdentity): AzureAssignedIdentity {
  const metadata = object.metadata ?? {};
  return {
    metadata: {
      name: metadata.name,
      namespace: metadata.namespace,
      uid: metadata.uid,
      resourceVersion: metadata.resourceVersion,
      // Only who wrote it: the audit compares the writers with MIC's field managers.
      managedFields: (metadata.managedFields ?? []).map((entry) => ({ manager: entry.manager, operation: entry.operation })),
    },
    spec: {
      pod: object.spec?.pod,
      podNamespace: object.spec?.podNamespace,
      azureIdentityRef: refOf(object.spec?.azureIdentityRef),
      azureBindingRef: refOf(object.spec?.azureBindingRef),
    },
  };
}

/** Every ServiceAccount, as its name, uid and client-id annotation: a client ID alone selects an MSI in Azure Workload Identity. */
function clientIdServiceAccounts(clients: KubeClients, log: Logger, metrics: Metrics, options: CacheOptions): Informer<V1ServiceAccount> {
  const informer = new Informer<V1ServiceAccount>(clients.kubeConfig, {
    path: "/api/v1/serviceaccounts",
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) => clients.core.listServiceAccountForAllNamespaces(params),
    transform: (account) => {
      const clientId = account.metadata?.annotations?.[WI_CLIENT_ID_ANNOTATION];
      return {
        metadata: {
          name: account.metadata?.name,
          namespace: account.metadata?.namespace,
          uid: account.metadata?.uid,
          resourceVersion: account.metadata?.resourceVersion,
          ...(clientId !== undefined ? { annotations: { [WI_CLIENT_ID_ANNOTATION]: clientId } } : {}),
        },
      };
    },
    onError: onError("serviceaccounts (all)", log, metrics),
  });
  trackSize(informer, "serviceaccounts-all", metrics);
  return informer;
}

function trackSize<T extends { metadata?: object }>(informer: Informer<T & { apiVersion?: string; kind?: string }>, resource: string, metrics: Metrics): void {
  const update = () => metrics.cacheObjects.set({ resource }, informer.size);
  informer.on("add", update);
  informer.on("delete", update);
}
