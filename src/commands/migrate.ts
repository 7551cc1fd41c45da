// `azure-msi-operator migrate`: reads the cluster (lists and gets only, no Azure) and prints, per
// namespace, the pods aad-pod-identity still serves and the exact change that moves each onto Azure
// Workload Identity. Nothing here writes.
import type { V1ObjectMeta, V1OwnerReference, V1Pod, V1PodTemplateSpec } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Config } from "../config/config.js";
import type { KubeClients } from "../kube/clients.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import {
  AAD_GROUP,
  AAD_VERSION,
  AZURE_IDENTITIES,
  AZURE_IDENTITY_BINDINGS,
  POD_IDENTITY_LABEL,
  WI_USE_LABEL,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "../kube/resources.js";
import { formatMigration, migrationExitCode, migrationReport, onPodIdentity, type PodView, type WorkloadRef } from "../workload/migrate.js";
import { labelledServiceAccount } from "../workload/plan.js";
import { listAll, type Page } from "./read.js";

export interface MigrateDeps {
  config: Config;
  clients: KubeClients;
  log: Logger;
  write: (text: string) => void;
}

/** 0: no pod is on aad-pod-identity; 1: some are (printed); 2: an error. */
export async function runMigrate({ config, clients, log, write }: MigrateDeps): Promise<number> {
  // Only pods that carry the label: an existence selector, so a big cluster's other pods are never read.
  const pods = await listAll((params) => clients.core.listPodForAllNamespaces({ labelSelector: POD_IDENTITY_LABEL, ...params }));
  const live = pods.filter((pod) => onPodIdentity({ selector: pod.metadata?.labels?.[POD_IDENTITY_LABEL] ?? "", phase: pod.status?.phase }));
  const namespaces = [...new Set(live.map((pod) => pod.metadata?.namespace ?? ""))].sort();
  const [bindings, identities, accounts] = await Promise.all([
    listAll(
      (params) =>
        clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural: AZURE_IDENTITY_BINDINGS, ...params }) as Promise<
          Page<AzureIdentityBinding>
        >,
    ),
    listAll(
      (params) =>
        clients.custom.listClusterCustomObject({ group: AAD_GROUP, version: AAD_VERSION, plural: AZURE_IDENTITIES, ...params }) as Promise<Page<AzureIdentity>>,
    ),
    Promise.all(namespaces.map((namespace) => listAll((params) => clients.core.listNamespacedServiceAccount({ namespace, ...params })))),
  ]);
  const owners = new OwnerResolver(clients, log);
  const views: PodView[] = [];
  for (const pod of live) views.push({ ...podView(pod), owner: await owners.of(pod) });
  const report = migrationReport({
    pods: views,
    bindings,
    identities,
    serviceAccounts: accounts.flat().map(labelledServiceAccount),
    lookupKeys: lookupLabelKeys(config.kubernetes.labelFormat),
  });
  write(config.output === "json" ? `${JSON.stringify(report, null, 2)}\n` : formatMigration(report));
  return migrationExitCode(report);
}

function podView(pod: V1Pod): Omit<PodView, "owner"> {
  return {
    namespace: pod.metadata?.namespace ?? "",
    name: pod.metadata?.name ?? "",
    selector: pod.metadata?.labels?.[POD_IDENTITY_LABEL] ?? "",
    serviceAccount: pod.spec?.serviceAccountName || "default",
    usesWorkloadIdentity: pod.metadata?.labels?.[WI_USE_LABEL] === "true",
    phase: pod.status?.phase,
  };
}

const controllerOf = (references: readonly V1OwnerReference[] | undefined) => references?.find((reference) => reference.controller) ?? references?.[0];

interface Templated {
  metadata?: V1ObjectMeta;
  spec?: { template?: V1PodTemplateSpec; jobTemplate?: { spec?: { template?: V1PodTemplateSpec } } };
}

/**
 * The workload whose template a pod was made from, with that template's labels now: a ReplicaSet's
 * Deployment, a Job's CronJob, else its own controller, else the Pod. Each workload is read once;
 * one that cannot be read (gone, not allowed, a kind this does not know) stands for itself, its
 * template unknown.
 */
class OwnerResolver {
  private readonly resolved = new Map<string, Promise<WorkloadRef>>();

  constructor(
    private readonly clients: KubeClients,
    private readonly log: Logger,
  ) {}

  of(pod: V1Pod): Promise<WorkloadRef> {
    const owner = controllerOf(pod.metadata?.ownerReferences);
    if (!owner) return Promise.resolve({ kind: "Pod", name: pod.metadata?.name ?? "" });
    return this.resolve(pod.metadata?.namespace ?? "", owner);
  }

  private resolve(namespace: string, owner: V1OwnerReference): Promise<WorkloadRef> {
    const key = `${owner.apiVersion}/${owner.kind}/${namespace}/${owner.name}`;
    let found = this.resolved.get(key);
    if (!found) this.resolved.set(key, (found = this.read(namespace, owner, key)));
    return found;
  }

  private async read(namespace: string, owner: V1OwnerReference, key: string): Promise<WorkloadRef> {
    const self = { kind: owner.kind, name: owner.name };
    const request = { namespace, name: owner.name };
    const reads: Record<string, (() => Promise<Templated>) | undefined> = {
      "apps/v1/ReplicaSet": () => this.clients.apps.readNamespacedReplicaSet(request),
      "apps/v1/Deployment": () => this.clients.apps.readNamespacedDeployment(request),
      "apps/v1/StatefulSet": () => this.clients.apps.readNamespacedStatefulSet(request),
      "apps/v1/DaemonSet": () => this.clients.apps.readNamespacedDaemonSet(request),
      "batch/v1/Job": () => this.clients.batch.readNamespacedJob(request),
      "batch/v1/CronJob": () => this.clients.batch.readNamespacedCronJob(request),
    };
    const read = reads[`${owner.apiVersion}/${owner.kind}`];
    if (!read) return self;
    let object: Templated;
    try {
      object = await read();
    } catch (error) {
      this.log.warn({ owner: key, err: (error as Error).message }, "could not read a pod's owner: reporting it as the workload");
      return self;
    }
    // A ReplicaSet's Deployment and a Job's CronJob hold the template that matters.
    const up = owner.kind === "ReplicaSet" || owner.kind === "Job" ? controllerOf(object.metadata?.ownerReferences) : undefined;
    if (up) return this.resolve(namespace, up);
    const template = object.spec?.jobTemplate?.spec?.template ?? object.spec?.template;
    return { ...self, templateLabels: template?.metadata?.labels ?? {} };
  }
}
