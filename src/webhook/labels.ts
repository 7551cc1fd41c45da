// Metric labels of the admission path, each from a fixed set. Anyone in the cluster can post an
// AdmissionReview naming any resource or operation; a label taken from it as it is would grow a new
// series per request, without bound, in memory and in every scrape.
import { AZURE_ASSIGNED_IDENTITIES, AZURE_IDENTITIES, AZURE_IDENTITY_BINDINGS, AZURE_POD_IDENTITY_EXCEPTIONS, SERVICE_ACCOUNTS } from "../kube/resources.js";
import type { Decision, Operation } from "./admission.js";

/** What an unknown value is counted as. */
export const OTHER_LABEL = "other";

/** The resources our webhooks are registered for: a mis-scoped rule sends one of them to the wrong webhook. */
export const KNOWN_RESOURCES: ReadonlySet<string> = new Set([
  AZURE_IDENTITIES,
  AZURE_IDENTITY_BINDINGS,
  AZURE_ASSIGNED_IDENTITIES,
  AZURE_POD_IDENTITY_EXCEPTIONS,
  SERVICE_ACCOUNTS,
]);
export const OPERATION_LABELS: readonly Operation[] = ["CREATE", "UPDATE", "DELETE", "CONNECT"];
export const RESULT_LABELS: readonly Decision["result"][] = ["allowed", "denied", "patched", "unowned", "error", "warned"];
const OPERATIONS: ReadonlySet<string> = new Set(OPERATION_LABELS);
const RESULTS: ReadonlySet<string> = new Set(RESULT_LABELS);

export function resourceLabel(resource: string): string {
  return KNOWN_RESOURCES.has(resource) ? resource : OTHER_LABEL;
}

/** The schema admits only the four operations; checked again here so a schema change cannot unbound the label. */
export function operationLabel(operation: string): string {
  return OPERATIONS.has(operation) ? operation : OTHER_LABEL;
}

export function resultLabel(result: string): string {
  return RESULTS.has(result) ? result : OTHER_LABEL;
}

/** Longest raw value written to a log line: a resource name is at most 253 characters, anything longer is not one. */
const MAX_LOGGED_LENGTH = 256;

/** A raw value as it may appear in a log line: cut to a length a real name never exceeds. */
export function loggable(raw: string): string {
  return raw.length > MAX_LOGGED_LENGTH ? `${raw.slice(0, MAX_LOGGED_LENGTH)}...` : raw;
}
