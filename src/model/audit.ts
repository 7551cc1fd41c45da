// What the syncer hands the audit (src/audit) after each full sync: the listing it reconciled from.
// Types only, here below both, so the syncer needs nothing from src/audit.
import type { Msi } from "../azure/types.js";
import type { DesiredState } from "./desired.js";

/** One subscription as the listing saw it. */
export interface ListedSubscription {
  /** Lower-cased. */
  subscriptionId: string;
  /** Listed completely, without error. */
  complete: boolean;
  /** Why not, when it was not. */
  error?: string;
}

/** The Azure side of an audit: what the last listing said, nothing asked anew. */
export interface AuditListing {
  desired: DesiredState;
  /** Every MSI of the listing (an incomplete subscription's merged with what the previous listing had). */
  msis: readonly Msi[];
  subscriptions: readonly ListedSubscription[];
}

/** The audit as the syncer drives it: run after each full sync's reconcile; resolves with the number of violations. */
export interface SyncAuditor {
  run(listing: AuditListing): Promise<number>;
}
