// How audit findings are told (pure): metric series, Events, PolicyReports and the command's text.
import type { ObjectEvent, ObjectRef } from "../kube/event-correlator.js";
import { VIOLATION_KINDS, type Violation, type ViolationKind } from "./audit.js";

/** The metric's series for a set of violations: a namespace label only for namespaces that exist (else ""). */
export function violationSeries(violations: readonly Violation[], namespaceExists: (namespace: string) => boolean): Map<string, number> {
  const series = new Map<string, number>();
  for (const violation of violations) {
    const namespace = violation.namespace !== "" && namespaceExists(violation.namespace) ? violation.namespace : "";
    const key = seriesKey(violation.kind, namespace);
    series.set(key, (series.get(key) ?? 0) + 1);
  }
  return series;
}

export const seriesKey = (kind: ViolationKind, namespace: string) => `${kind}\u0000${namespace}`;

export function seriesLabels(key: string): { kind: ViolationKind; namespace: string } {
  const [kind = "", namespace = ""] = key.split("\u0000");
  return { kind: kind as ViolationKind, namespace };
}

/**
 * The Warning Event for a violation: on the object it is about, or for a FIC whose ServiceAccount is
 * unknown and a subscription with nothing in the cluster, on the namespace or the operator's pod.
 */
export function auditEvent(violation: Violation, namespaceUid: (namespace: string) => string | undefined, pod: ObjectRef | undefined): ObjectEvent | undefined {
  const base = { type: "Warning" as const, reason: violation.kind, note: violation.message, action: "Audit" };
  const object = violation.object;
  if (object && (object.uid || object.kind !== "ServiceAccount")) return { ...base, regarding: { ...object } };
  if (violation.namespace !== "") {
    const uid = namespaceUid(violation.namespace);
    // A namespace that does not exist takes no Event.
    if (uid === undefined) return undefined;
    return { ...base, regarding: { apiVersion: "v1", kind: "Namespace", namespace: violation.namespace, name: violation.namespace, uid } };
  }
  return pod && { ...base, regarding: pod };
}

/** `audit`'s exit code: 0 clean, 1 violations (2, an error, is the caller's). */
export function auditExitCode(violations: readonly Violation[]): 0 | 1 {
  return violations.length > 0 ? 1 : 0;
}

/** The human-readable form: one line per violation, grouped by kind, then a summary line. */
export function formatAudit(violations: readonly Violation[]): string {
  const lines: string[] = [];
  for (const kind of VIOLATION_KINDS) {
    const found = violations.filter((violation) => violation.kind === kind);
    if (found.length === 0) continue;
    lines.push(`${kind} (${found.length}):`);
    for (const violation of found) {
      const where = violation.object
        ? `${violation.object.kind} ${violation.object.namespace}/${violation.object.name}`
        : violation.namespace
          ? `namespace ${violation.namespace}`
          : "cluster";
      lines.push(`  ! ${where}${violation.azure?.fic ? ` (FIC ${violation.azure.fic})` : ""}: ${violation.message}`);
    }
  }
  const kinds = new Set(violations.map((violation) => violation.kind)).size;
  lines.push(violations.length === 0 ? "no violations" : `${violations.length} violation(s) of ${kinds} kind(s)`);
  return `${lines.join("\n")}\n`;
}

/** The JSON form: the violations and counts by kind (every kind, zeros included). */
export function auditJson(violations: readonly Violation[]): { violations: readonly Violation[]; counts: Record<ViolationKind, number> } {
  const counts = Object.fromEntries(VIOLATION_KINDS.map((kind) => [kind, 0])) as Record<ViolationKind, number>;
  for (const violation of violations) counts[violation.kind]++;
  return { violations, counts };
}
