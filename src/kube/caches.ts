import type { KubernetesObject, V1Lease, V1Namespace, V1Pod, V1ServiceAccount } from "@kubernetes/client-node";
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
  POD_IDENTITY_LABEL,
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

/**
 * ServiceAccounts that select an MSI (workload identity mode): all three lookup labels, or the
 * client-id annotation alone, as Azure Workload Identity's docs set it. No selector can ask the API
 * server for an annotation, so every ServiceAccount is listed and watched, and the cache keeps only
 * those that select, trimmed to what the FIC controller reads (names, uid, resourceVersion, the
 * lookup labels and the annotation): a cluster's many `default` accounts cost a pass of the list,
 * not memory.
 */
export function workloadServiceAccounts(
  clients: KubeClients,
  labelFormat: string,
  log: Logger,
  metrics: Metrics,
  options: CacheOptions = {},
): Informer<V1ServiceAccount> | undefined {
  const keys = lookupLabelKeys(labelFormat);
  if (!keys) return undefined;
  const lookup = [keys.name, keys.resourcegroup, keys.subscription];
  const keep = (account: V1ServiceAccount): V1ServiceAccount | undefined => {
    const metadata = account.metadata ?? {};
    const labels = Object.fromEntries(lookup.flatMap((key) => (metadata.labels?.[key] !== undefined ? [[key, metadata.labels[key]]] : [])));
    const clientId = metadata.annotations?.[WI_CLIENT_ID_ANNOTATION];
    const labelled = lookup.every((key) => labels[key]);
    if (!labelled && !clientId?.trim()) return undefined;
    return {
      metadata: {
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        resourceVersion: metadata.resourceVersion,
        labels,
        ...(clientId !== undefined ? { annotations: { [WI_CLIENT_ID_ANNOTATION]: clientId } } : {}),
      },
    };
  };
  const informer = new Informer<V1ServiceAccount>(clients.kubeConfig, {
    path: "/api/v1/serviceaccounts",
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) => clients.core.listServiceAccountForAllNamespaces(params),
    onError: onError("serviceaccounts", log, metrics),
    keep,
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
  extra: { labelSelector?: string; keep?: (object: T) => T | undefined } = {},
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
 * reads (their spec embeds a whole identity and binding) and exceptions. In workload identity mode
 * the audit reads the mode's own ServiceAccount cache (workloadServiceAccounts).
 */
export function auditCaches(clients: KubeClients, log: Logger, metrics: Metrics, options: CacheOptions) {
  return {
    unowned: aadCache<AzureIdentity>(clients, AZURE_IDENTITIES, log, metrics, options, { labelSelector: `${MANAGED_BY_LABEL}!=${MANAGED_BY_VALUE}` }),
    assigned: aadCache<AzureAssignedIdentity>(clients, AZURE_ASSIGNED_IDENTITIES, log, metrics, options, { keep: slimAssigned }),
    exceptions: aadCache<AzurePodIdentityException>(clients, AZURE_POD_IDENTITY_EXCEPTIONS, log, metrics, options),
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

/**
 * Pods still on aad-pod-identity (leader only, for azuremsi_pod_identity_pods): an existence
 * selector on the aadpodidbinding label, so only those pods are listed and watched, each trimmed to
 * its names, that label and its phase.
 */
export function podIdentityPods(clients: KubeClients, log: Logger, metrics: Metrics, options: CacheOptions = {}): Informer<V1Pod> {
  const keep = (pod: V1Pod): V1Pod => ({
    metadata: {
      name: pod.metadata?.name,
      namespace: pod.metadata?.namespace,
      uid: pod.metadata?.uid,
      resourceVersion: pod.metadata?.resourceVersion,
      labels: { [POD_IDENTITY_LABEL]: pod.metadata?.labels?.[POD_IDENTITY_LABEL] ?? "" },
    },
    ...(pod.status?.phase ? { status: { phase: pod.status.phase } } : {}),
  });
  const informer = new Informer<V1Pod>(clients.kubeConfig, {
    path: "/api/v1/pods",
    labelSelector: POD_IDENTITY_LABEL,
    watchTimeoutSeconds: options.watchTimeoutSeconds,
    list: (params) => clients.core.listPodForAllNamespaces(params),
    onError: onError("pods", log, metrics),
    keep,
  });
  trackSize(informer, "pods", metrics);
  return informer;
}

function trackSize<T extends { metadata?: object }>(informer: Informer<T & { apiVersion?: string; kind?: string }>, resource: string, metrics: Metrics): void {
  const update = () => metrics.cacheObjects.set({ resource }, informer.size);
  informer.on("add", update);
  informer.on("delete", update);
}
