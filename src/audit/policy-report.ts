// PolicyReports (wgpolicyk8s.io/v1alpha2, the policy working group's format that Kyverno and
// Gatekeeper tooling read): one per namespace with violations, written by the leader only where the
// CRD is installed. Building them is pure; the writer asks the term before every write and writes
// only what changed, so a steady cluster costs one list per audit.
import type { CustomObjectsApi } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { kubeErrorMessage, statusCode } from "../kube/errors.js";
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from "../kube/resources.js";
import type { Violation, ViolationKind } from "./audit.js";

export const POLICY_REPORT_GROUP = "wgpolicyk8s.io";
export const POLICY_REPORT_VERSION = "v1alpha2";
export const POLICY_REPORTS = "policyreports";
export const POLICY_REPORT_NAME = "azure-msi-operator-audit";
const SOURCE = "azure-msi-operator";

const SEVERITY: Record<ViolationKind, "high" | "medium"> = {
  UnownedIdentity: "high",
  StaleIdentity: "high",
  IdentityNotNamespaced: "medium",
  AssignedIdentityCrossNamespace: "high",
  AssignedIdentityNotFromMic: "high",
  PodIdentityException: "medium",
  ServiceAccountUntaggedClientId: "high",
  FederatedCredentialUntaggedNamespace: "high",
  SubscriptionUnknown: "medium",
};

export interface PolicyReportResult {
  source: string;
  policy: string;
  rule: string;
  result: "fail";
  severity: string;
  scored: boolean;
  message: string;
  resources?: { apiVersion: string; kind: string; namespace: string; name: string; uid?: string }[];
  properties?: Record<string, string>;
  timestamp?: { seconds: number; nanos: number };
}

export interface PolicyReport {
  apiVersion: string;
  kind: "PolicyReport";
  metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion?: string };
  summary: { pass: number; fail: number; warn: number; error: number; skip: number };
  results: PolicyReportResult[];
}

/** One namespace's report (results without timestamps: they are added when written). */
export function policyReportFor(namespace: string, violations: readonly Violation[]): PolicyReport {
  const results = violations.map((violation): PolicyReportResult => ({
    source: SOURCE,
    policy: POLICY_REPORT_NAME,
    rule: violation.kind,
    result: "fail",
    severity: SEVERITY[violation.kind],
    scored: true,
    message: violation.message,
    ...(violation.object ? { resources: [{ ...violation.object }] } : {}),
    ...(violation.azure ? { properties: { msiId: violation.azure.msiId, ...(violation.azure.fic ? { fic: violation.azure.fic } : {}) } } : {}),
  }));
  return {
    apiVersion: `${POLICY_REPORT_GROUP}/${POLICY_REPORT_VERSION}`,
    kind: "PolicyReport",
    metadata: { name: POLICY_REPORT_NAME, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE } },
    summary: { pass: 0, fail: results.length, warn: 0, error: 0, skip: 0 },
    results,
  };
}

/** JSON with object keys sorted: the API server hands back stored objects with their keys in its own order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object")
    return `{${Object.entries(value)
      .filter(([, child]) => child !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, child]) => `${JSON.stringify(key)}:${canonical(child)}`)
      .join(",")}}`;
  return JSON.stringify(value);
}

/** Whether a stored report says the same as a built one (timestamps aside). */
export function sameReport(stored: PolicyReport, built: PolicyReport): boolean {
  const strip = (report: PolicyReport) => canonical((report.results ?? []).map(({ timestamp: _timestamp, ...rest }) => rest));
  return strip(stored) === strip(built) && stored.summary?.fail === built.summary.fail;
}

export interface PolicyReportOutcome {
  installed: boolean;
  created: number;
  updated: number;
  deleted: number;
  failed: number;
}

/** Writes the reports of one audit: creates, replaces what changed, deletes those of namespaces now clean. */
export class PolicyReportWriter {
  constructor(
    private readonly custom: CustomObjectsApi,
    private readonly canWrite: () => boolean,
    private readonly log: Logger,
  ) {}

  async write(byNamespace: ReadonlyMap<string, readonly Violation[]>, now: Date): Promise<PolicyReportOutcome> {
    const outcome: PolicyReportOutcome = { installed: true, created: 0, updated: 0, deleted: 0, failed: 0 };
    let stored: PolicyReport[];
    try {
      const list = (await this.custom.listClusterCustomObject({
        group: POLICY_REPORT_GROUP,
        version: POLICY_REPORT_VERSION,
        plural: POLICY_REPORTS,
        labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`,
      })) as { items: PolicyReport[] };
      stored = list.items.filter((report) => report.metadata.name === POLICY_REPORT_NAME);
    } catch (error) {
      // No PolicyReport CRD here: nothing to write, and nothing wrong.
      if (statusCode(error) === 404) return { ...outcome, installed: false };
      throw error;
    }
    const existing = new Map(stored.map((report) => [report.metadata.namespace, report]));
    const timestamp = { seconds: Math.floor(now.getTime() / 1000), nanos: 0 };
    for (const [namespace, violations] of byNamespace) {
      const built = policyReportFor(namespace, violations);
      const old = existing.get(namespace);
      existing.delete(namespace);
      if (old && sameReport(old, built)) continue;
      built.results = built.results.map((result) => ({ ...result, timestamp }));
      if (!(await this.apply(old ? "update" : "create", namespace, () => this.put(built, old), outcome))) return outcome;
    }
    for (const namespace of existing.keys()) {
      const deleted = () =>
        this.custom.deleteNamespacedCustomObject({
          group: POLICY_REPORT_GROUP,
          version: POLICY_REPORT_VERSION,
          plural: POLICY_REPORTS,
          namespace,
          name: POLICY_REPORT_NAME,
        });
      if (!(await this.apply("delete", namespace, deleted, outcome))) return outcome;
    }
    return outcome;
  }

  private put(built: PolicyReport, old: PolicyReport | undefined): Promise<unknown> {
    const where = { group: POLICY_REPORT_GROUP, version: POLICY_REPORT_VERSION, plural: POLICY_REPORTS, namespace: built.metadata.namespace };
    if (!old) return this.custom.createNamespacedCustomObject({ ...where, body: built });
    built.metadata.resourceVersion = old.metadata.resourceVersion;
    return this.custom.replaceNamespacedCustomObject({ ...where, name: POLICY_REPORT_NAME, body: built });
  }

  /** One write, gated by the term; false: no longer the leader, so nothing more is written. */
  private async apply(verb: "create" | "update" | "delete", namespace: string, write: () => Promise<unknown>, outcome: PolicyReportOutcome): Promise<boolean> {
    if (!this.canWrite()) {
      this.log.debug({ namespace, verb }, "PolicyReport write refused: not the leader");
      return false;
    }
    try {
      await write();
      outcome[verb === "create" ? "created" : verb === "update" ? "updated" : "deleted"]++;
    } catch (error) {
      // The next audit writes it again (a conflict or a namespace being deleted).
      outcome.failed++;
      this.log.warn({ namespace, verb, err: kubeErrorMessage(error) }, "PolicyReport write failed");
    }
    return true;
  }
}
