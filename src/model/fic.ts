// What the syncer and the FIC controller (src/workload/fic-controller.ts) say to each other. It lives
// here so that the syncer needs nothing from src/workload: src/workload depends on src/syncer (its
// WorkQueue), never the other way round.
import type { MsiRef } from "../azure/types.js";
import type { DesiredState } from "./desired.js";

/** What a full sync did to federated identity credentials (SyncSummary.fics, the azuremsi_fic_objects gauge). */
export interface FicOutcome {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  skipped: number;
  errors: number;
}

/** What one Azure listing tells the FIC controller. */
export interface FicListing {
  desired: DesiredState;
  /** The listing was complete and error-free: only then is anything revoked. */
  complete: boolean;
  /** MSIs to look at besides the wanted ones and those holding ours: every MSI of a complete subscription, after a fresh listing. */
  scan: readonly MsiRef[];
}

/** The FIC controller as the syncer drives it. */
export interface FicReconciler {
  /**
   * Takes the listing as the latest one and reconciles every MSI it concerns; resolves once each of
   * them has been processed after this call (a key retried after a conflict counts once it settles).
   */
  sync(listing: FicListing): Promise<FicOutcome>;
  /**
   * For good: waiting keys are dropped, the Azure calls in flight aborted, pending sync() calls
   * resolved; resolves once no key is running, so nothing of the term is left writing.
   */
  stop(): Promise<void>;
}
