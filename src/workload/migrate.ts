// `azure-msi-operator migrate`: which pods still get their Azure tokens through aad-pod-identity,
// and the exact change that moves each onto Azure Workload Identity (pure: the command reads the
// cluster and hands the objects in). Also the count behind azuremsi_pod_identity_pods.
import { lookupValuesOf, sameLookup, type LookupValues } from "../kube/lookup.js";
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  POD_IDENTITY_LABEL,
  WI_CLIENT_ID_ANNOTATION,
  WI_USE_LABEL,
  type AzureIdentity,
  type AzureIdentityBinding,
} from "../kube/resources.js";
import type { LabelledServiceAccount } from "./plan.js";

/** The controller that owns a pod's template (a ReplicaSet's Deployment, a Job's CronJob), or the bare Pod. */
export interface WorkloadRef {
  kind: string;
  name: string;
  /** Its pod template's labels as they are now, when it could be read (they change before its pods do). */
  templateLabels?: Record<string, string>;
}

export interface PodView {
  namespace: string;
  name: string;
  /** Its aadpodidbinding label. */
  selector: string;
  /** spec.serviceAccountName ("default" when unset). */
  serviceAccount: string;
  /** It already carries azure.workload.identity/use: "true". */
  usesWorkloadIdentity: boolean;
  phase: string | undefined;
  owner: WorkloadRef;
}

/** A pod that has finished no longer asks NMI for anything. */
export function onPodIdentity(pod: { selector: string; phase: string | undefined }): boolean {
  return pod.selector !== "" && pod.phase !== "Succeeded" && pod.phase !== "Failed";
}

/** Pods still on pod identity per namespace (only namespaces with at least one). */
export function podIdentityCounts(pods: readonly { namespace: string; selector: string; phase: string | undefined }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const pod of pods) if (onPodIdentity(pod)) counts.set(pod.namespace, (counts.get(pod.namespace) ?? 0) + 1);
  return counts;
}

export interface MigrationInput {
  pods: readonly PodView[];
  bindings: readonly AzureIdentityBinding[];
  identities: readonly AzureIdentity[];
  /** The ServiceAccounts of the namespaces with pods on pod identity. */
  serviceAccounts: readonly LabelledServiceAccount[];
  /** --kubernetes.label.format's keys: the lookup labels are offered as the alternative to the annotation. */
  lookupKeys: Record<keyof LookupValues, string> | undefined;
}

export interface MigrationWorkload {
  kind: string;
  name: string;
  pods: string[];
  /** Its template carries azure.workload.identity/use already (when the template is unknown: all its pods do). */
  labelled: boolean;
  /** Of its pods, those made before the label (replaced by the rollout the template change starts). */
  unlabelledPods: number;
  /** How its pod template gets the label: a patch command, or (Job, bare Pod, unknown kinds) a note to change its manifest. */
  template: { patch: string; remove: string } | { note: string };
}

export type ServiceAccountState =
  /** Annotated (or labelled) for the binding's MSI already. */
  | "done"
  /** To annotate. */
  | "todo"
  /** It names another client ID (or MSI) now: changing it moves its other users too. */
  | "conflict"
  /** Nothing to do: the binding's identity is missing or has no client ID. */
  | "blocked";

export interface MigrationMove {
  binding: { name: string; selector: string; azureIdentity: string };
  /** The binding's AzureIdentity, null when it does not exist. */
  identity: { name: string; clientID: string | null; resourceID: string | null; type: number | null; managed: boolean } | null;
  serviceAccount: {
    name: string;
    exists: boolean;
    state: ServiceAccountState;
    /** Its client-id annotation now. */
    clientId: string | null;
    /** What to set on it: the annotation, or (alternative) the three lookup labels. */
    annotations: Record<string, string>;
    labels: Record<string, string> | null;
  };
  workloads: MigrationWorkload[];
  /** The commands, in order (comments start with #). */
  commands: string[];
  warnings: string[];
}

export interface NamespaceMigration {
  namespace: string;
  /** Pods on pod identity (running or pending) in the namespace. */
  pods: number;
  moves: MigrationMove[];
  /**
   * Pods whose aadpodidbinding label matches no binding of their namespace: nothing to move here.
   * `elsewhere`: bindings of other namespaces with that selector (`namespace/name`), which
   * aad-pod-identity matches too unless it runs with forceNamespaced or the identity is namespaced.
   */
  unmatched: { pod: string; selector: string; owner: WorkloadRef; elsewhere: string[] }[];
}

export interface MigrationReport {
  pods: number;
  namespaces: NamespaceMigration[];
}

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

/** Where a kind keeps its pod template, for the kinds whose template a patch may change. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  ReplicaSet: ["spec", "template"],
  ReplicationController: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
};

function templateChange(namespace: string, owner: WorkloadRef): MigrationWorkload["template"] {
  const path = TEMPLATE_PATHS[owner.kind];
  const label = `${WI_USE_LABEL}: "true"`;
  if (!path) {
    if (owner.kind === "Pod")
      return { note: `bare Pod ${owner.name}: add the label ${label} to its manifest and create it again (the webhook acts when a pod is created)` };
    if (owner.kind === "Job") return { note: `Job ${owner.name}: its pod template cannot be changed; add the label ${label} to its manifest and run it again` };
    return { note: `${owner.kind} ${owner.name}: add the label ${label} to its pod template` };
  }
  const nested = [...path, "metadata", "labels"].reduceRight<unknown>((inner, key) => ({ [key]: inner }), { [WI_USE_LABEL]: "true" });
  const resource = owner.kind.toLowerCase();
  const pointer = `/${[...path, "metadata", "labels", POD_IDENTITY_LABEL].join("/")}`;
  return {
    patch: `kubectl -n ${namespace} patch ${resource} ${owner.name} --type=merge -p ${quote(JSON.stringify(nested))}`,
    remove: `kubectl -n ${namespace} patch ${resource} ${owner.name} --type=json -p ${quote(JSON.stringify([{ op: "remove", path: pointer }]))}`,
  };
}

/**
 * The migration report (pure): per namespace, per binding and ServiceAccount, the pods NMI still
 * serves, the MSI their binding gives them, and the changes that move them to workload identity:
 * the ServiceAccount annotated with the MSI's client ID (or the lookup labels), the pod template
 * labelled azure.workload.identity/use, and later the aadpodidbinding label removed.
 */
export function migrationReport({ pods, bindings, identities, serviceAccounts, lookupKeys }: MigrationInput): MigrationReport {
  const live = pods.filter(onPodIdentity);
  const namespaces = [...new Set(live.map((pod) => pod.namespace))].sort();
  const report: MigrationReport = { pods: live.length, namespaces: [] };
  for (const namespace of namespaces) {
    const inNamespace = live.filter((pod) => pod.namespace === namespace).sort((a, b) => a.name.localeCompare(b.name));
    const entry: NamespaceMigration = { namespace, pods: inNamespace.length, moves: [], unmatched: [] };
    const nsBindings = bindings
      .filter((binding) => binding.metadata?.namespace === namespace)
      .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
    const groups = new Map<string, { binding: AzureIdentityBinding; serviceAccount: string; pods: PodView[] }>();
    for (const pod of inNamespace) {
      const matched = nsBindings.filter((binding) => binding.spec?.selector === pod.selector);
      if (matched.length === 0) {
        const elsewhere = bindings
          .filter((binding) => binding.metadata?.namespace !== namespace && binding.spec?.selector === pod.selector)
          .map((binding) => `${binding.metadata?.namespace ?? ""}/${binding.metadata?.name ?? ""}`)
          .sort();
        entry.unmatched.push({ pod: pod.name, selector: pod.selector, owner: { kind: pod.owner.kind, name: pod.owner.name }, elsewhere });
      }
      for (const binding of matched) {
        const key = `${binding.metadata?.name ?? ""}\0${pod.serviceAccount}`;
        let group = groups.get(key);
        if (!group) groups.set(key, (group = { binding, serviceAccount: pod.serviceAccount, pods: [] }));
        group.pods.push(pod);
      }
    }
    for (const group of groups.values()) {
      const identityName = group.binding.spec?.azureIdentity ?? "";
      const identity = identities.find((candidate) => candidate.metadata?.namespace === namespace && candidate.metadata?.name === identityName);
      const account = serviceAccounts.find((candidate) => candidate.namespace === namespace && candidate.name === group.serviceAccount);
      entry.moves.push(move(namespace, group.binding, identity, group.serviceAccount, account, group.pods, lookupKeys));
    }
    flagSharedServiceAccounts(entry.moves);
    report.namespaces.push(entry);
  }
  return report;
}

function move(
  namespace: string,
  binding: AzureIdentityBinding,
  identity: AzureIdentity | undefined,
  serviceAccount: string,
  account: LabelledServiceAccount | undefined,
  pods: readonly PodView[],
  lookupKeys: Record<keyof LookupValues, string> | undefined,
): MigrationMove {
  const identityName = binding.spec?.azureIdentity ?? "";
  const summary = identity ? identitySummary(identityName, identity) : null;
  const lookup = lookupKeys ? lookupValuesOf(identity?.metadata?.labels, lookupKeys) : undefined;
  const plan = accountPlan(summary, lookup, account, lookupKeys);
  const labels =
    lookup && lookupKeys
      ? { [lookupKeys.name]: lookup.name, [lookupKeys.resourcegroup]: lookup.resourcegroup, [lookupKeys.subscription]: lookup.subscription }
      : null;
  const workloads = workloadsOf(namespace, pods);
  const commands = moveCommands(namespace, serviceAccount, account !== undefined, summary?.clientID ?? null, labels, plan, workloads);
  return {
    binding: { name: binding.metadata?.name ?? "", selector: binding.spec?.selector ?? "", azureIdentity: identityName },
    identity: summary,
    serviceAccount: {
      name: serviceAccount,
      exists: account !== undefined,
      state: plan.state,
      clientId: plan.current,
      annotations: summary?.clientID ? { [WI_CLIENT_ID_ANNOTATION]: summary.clientID } : {},
      labels,
    },
    workloads: workloads.map(({ removable: _removable, ...workload }) => workload),
    commands,
    warnings: moveWarnings(namespace, identityName, summary, serviceAccount, plan),
  };
}

/** The commands that move one binding's pods of one ServiceAccount, in the order to run them (comments start with #). */
function moveCommands(
  namespace: string,
  serviceAccount: string,
  exists: boolean,
  clientID: string | null,
  labels: Record<string, string> | null,
  plan: AccountPlan,
  workloads: readonly Workload[],
): string[] {
  const commands: string[] = [];
  if (plan.state === "blocked") return commands;
  if (!exists) commands.push(`kubectl -n ${namespace} create serviceaccount ${serviceAccount}`);
  if (plan.state !== "done") {
    const overwrite = plan.state === "conflict" ? " --overwrite" : "";
    commands.push(`kubectl -n ${namespace} annotate serviceaccount ${serviceAccount} ${WI_CLIENT_ID_ANNOTATION}=${clientID}${overwrite}`);
    const pairs = Object.entries(labels ?? {}).map(([key, value]) => `${key}=${value}`);
    if (pairs.length > 0 && !plan.labelled)
      commands.push(`#   or the lookup labels instead: kubectl -n ${namespace} label serviceaccount ${serviceAccount} ${pairs.join(" ")}`);
  }
  for (const workload of workloads)
    if (!workload.labelled) commands.push("note" in workload.template ? `# ${workload.template.note}` : workload.template.patch);
  for (const workload of workloads)
    if ("remove" in workload.template && workload.removable)
      commands.push(`# once its new pods get tokens through workload identity: ${workload.template.remove}`);
  return commands;
}

function identitySummary(name: string, identity: AzureIdentity): NonNullable<MigrationMove["identity"]> {
  const spec = identity.spec ?? {};
  return {
    name,
    clientID: typeof spec.clientID === "string" && spec.clientID !== "" ? spec.clientID : null,
    resourceID: typeof spec.resourceID === "string" ? spec.resourceID : null,
    type: typeof spec.type === "number" ? spec.type : null,
    managed: identity.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE,
  };
}

interface AccountPlan {
  state: ServiceAccountState;
  /** Its client-id annotation now. */
  current: string | null;
  /** It carries the three lookup labels (they decide over the annotation, the operator's rule). */
  labelled: boolean;
}

function accountPlan(
  identity: MigrationMove["identity"],
  lookup: LookupValues | undefined,
  account: LabelledServiceAccount | undefined,
  lookupKeys: Record<keyof LookupValues, string> | undefined,
): AccountPlan {
  const current = account?.clientId?.trim() || null;
  const own = lookupKeys && account ? lookupValuesOf(account.labels, lookupKeys) : undefined;
  const plan = (state: ServiceAccountState): AccountPlan => ({ state, current, labelled: own !== undefined });
  if (!identity?.clientID) return plan("blocked");
  if (own) return plan(lookup && sameLookup(own, lookup) ? "done" : "conflict");
  if (current === null) return plan("todo");
  return plan(current.toLowerCase() === identity.clientID.toLowerCase() ? "done" : "conflict");
}

function moveWarnings(namespace: string, identityName: string, identity: MigrationMove["identity"], serviceAccount: string, plan: AccountPlan): string[] {
  const warnings: string[] = [];
  if (!identity) warnings.push(`AzureIdentity ${identityName} (the binding's spec.azureIdentity) does not exist in ${namespace}: no MSI to move to`);
  else if (!identity.clientID) warnings.push(`AzureIdentity ${identityName} has no spec.clientID: no MSI to move to`);
  if (identity && identity.type !== null && identity.type !== 0)
    warnings.push(
      `AzureIdentity ${identityName} is of type ${identity.type} (a service principal), not a user-assigned MSI: this operator makes FICs on MSIs only; federate the app registration yourself`,
    );
  else if (identity && !identity.managed)
    warnings.push(
      `AzureIdentity ${identityName} is not managed by azure-msi-operator: the operator makes the FIC only if the MSI is tagged for namespace ${namespace}`,
    );
  if (serviceAccount === "default")
    warnings.push(
      `the pods run as the namespace's default ServiceAccount: once it names the MSI, every pod of ${namespace} that runs as default and carries ${WI_USE_LABEL} can get the MSI's tokens; a ServiceAccount of their own keeps the grant as narrow as the binding's selector was`,
    );
  if (plan.state === "conflict")
    warnings.push(
      plan.labelled
        ? `ServiceAccount ${serviceAccount}'s lookup labels name another MSI (they win over the annotation): change them only if nothing else relies on them`
        : `ServiceAccount ${serviceAccount} names client ID ${plan.current} now: overwriting it moves every pod that runs as ${serviceAccount}`,
    );
  return warnings;
}

/** A workload, and whether its template still carries aadpodidbinding (then its removal is printed). */
type Workload = MigrationWorkload & { removable: boolean };

function workloadsOf(namespace: string, pods: readonly PodView[]): Workload[] {
  const byOwner = new Map<string, Workload>();
  for (const pod of pods) {
    const { kind, name, templateLabels } = pod.owner;
    const key = `${kind}/${name}`;
    let workload = byOwner.get(key);
    if (!workload) {
      workload = {
        kind,
        name,
        pods: [],
        labelled: templateLabels ? templateLabels[WI_USE_LABEL] === "true" : true,
        unlabelledPods: 0,
        template: templateChange(namespace, pod.owner),
        removable: templateLabels ? templateLabels[POD_IDENTITY_LABEL] !== undefined : true,
      };
      byOwner.set(key, workload);
    }
    workload.pods.push(pod.name);
    if (!pod.usesWorkloadIdentity) workload.unlabelledPods++;
    if (!templateLabels) workload.labelled &&= pod.usesWorkloadIdentity;
  }
  return [...byOwner.values()].sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
}

/** One ServiceAccount can name one client ID: pods of bindings to different MSIs that share one cannot all move as they are. */
function flagSharedServiceAccounts(moves: readonly MigrationMove[]): void {
  for (const one of moves) {
    const others = moves.filter(
      (other) =>
        other !== one &&
        other.serviceAccount.name === one.serviceAccount.name &&
        other.identity?.clientID &&
        other.identity.clientID.toLowerCase() !== one.identity?.clientID?.toLowerCase(),
    );
    for (const other of others)
      one.warnings.push(
        `ServiceAccount ${one.serviceAccount.name} also runs pods of binding ${other.binding.name} (client ID ${other.identity?.clientID}): one ServiceAccount names one client ID; give one of the workloads a ServiceAccount of its own`,
      );
  }
}

/** 0: no pod is on pod identity any more; 1: some are (the report says which). */
export function migrationExitCode(report: MigrationReport): 0 | 1 {
  return report.pods > 0 ? 1 : 0;
}

/** The text form: per namespace, per binding, per ServiceAccount, the workloads and the commands that move them. */
export function formatMigration(report: MigrationReport): string {
  const lines: string[] = [];
  for (const entry of report.namespaces) {
    lines.push(`namespace ${entry.namespace}: ${entry.pods} pod(s) on aad-pod-identity`);
    for (const one of entry.moves) {
      const identity = one.identity
        ? `AzureIdentity ${one.identity.name} -> MSI client ID ${one.identity.clientID ?? "(none)"}, ${one.identity.resourceID ?? "(no resourceID)"}`
        : `AzureIdentity ${one.binding.azureIdentity} (missing)`;
      lines.push(`  binding ${one.binding.name} (selector "${one.binding.selector}") -> ${identity}`);
      const account = `ServiceAccount ${one.serviceAccount.name}${one.serviceAccount.exists ? "" : " (does not exist)"}`;
      const workloads = one.workloads.map(
        (workload) =>
          `${workload.kind} ${workload.name} (${workload.pods.length} pod(s): ${workload.pods.join(", ")})` +
          (workload.labelled && workload.unlabelledPods > 0 ? ` [template labelled; ${workload.unlabelledPods} pod(s) made before it]` : ""),
      );
      lines.push(`    ${account} [${one.serviceAccount.state}]: ${workloads.join("; ")}`);
      for (const command of one.commands) lines.push(`      ${command}`);
      for (const warning of one.warnings) lines.push(`      ! ${warning}`);
    }
    for (const pod of entry.unmatched) {
      const where = `  ! pod ${pod.pod} (${pod.owner.kind} ${pod.owner.name}): ${POD_IDENTITY_LABEL}="${pod.selector}" matches no AzureIdentityBinding in ${entry.namespace}`;
      lines.push(
        pod.elsewhere.length === 0
          ? `${where}; nothing to move, remove the label`
          : `${where}, but ${pod.elsewhere.join(", ")} has that selector: without forceNamespaced (or namespaced identities) aad-pod-identity gives it that binding's identity; move it to an MSI tagged for ${entry.namespace} before removing the label`,
      );
    }
  }
  const moves = report.namespaces.flatMap((entry) => entry.moves);
  const accounts = new Set(
    report.namespaces.flatMap((entry) =>
      entry.moves
        .filter((one) => one.serviceAccount.state === "todo" || one.serviceAccount.state === "conflict")
        .map((one) => `${entry.namespace}/${one.serviceAccount.name}`),
    ),
  );
  const templates = moves.flatMap((one) => (one.serviceAccount.state === "blocked" ? [] : one.workloads.filter((workload) => !workload.labelled)));
  lines.push(
    `${report.pods} pod(s) on aad-pod-identity in ${report.namespaces.length} namespace(s); ${accounts.size} ServiceAccount change(s), ${templates.length} pod template(s) to label`,
  );
  return `${lines.join("\n")}\n`;
}
