// The enforce step of the admission pipeline (parse -> decide -> enforce -> respond), pure: the
// decisions say what the rules say; --webhook.enforcement says whether a refusal is one. In warn
// mode every refusal is let through with a warning kubectl prints, so a platform team can install on
// a live cluster, watch what would be refused, then switch to deny.
import type { Decision } from "./admission.js";

export type Enforcement = "deny" | "warn";

export const WARN_PREFIX = "azure-msi-operator (warn mode) would deny this request: ";

export interface Enforced {
  decision: Decision;
  /** A refusal let through: the caller logs and counts it. */
  warned: boolean;
}

export function enforce(decision: Decision, mode: Enforcement): Enforced {
  if (decision.allowed || mode === "deny") return { decision, warned: false };
  return {
    // No patch: a decision that refused made none, and warn mode never adds one.
    decision: {
      allowed: true,
      result: "warned",
      warnings: [`${WARN_PREFIX}${decision.message ?? "denied"}`, ...(decision.warnings ?? [])],
    },
    warned: true,
  };
}
