import type { LookupValues } from "../kube/lookup.js";

/** An object a happening is about, as the caches know it (the uid lets `kubectl describe` find its Events). */
export interface Subject {
  namespace: string;
  name: string;
  uid: string | undefined;
}

/**
 * What a sync did or could not do, for the people it concerns: facts only. The syncer reports them
 * through SyncerDeps.report; src/events/sync-events.ts turns them into Events.
 */
export type SyncHappening =
  | { kind: "msiSkipped"; namespace: Subject; msiId: string; reason: string }
  | { kind: "identityCreated"; namespace: Subject; name: string; msiId: string }
  | { kind: "identityDeleted"; namespace: Subject; name: string }
  | { kind: "bindingSynced"; binding: Subject; from: string | undefined; to: string }
  | { kind: "bindingUnmatched"; binding: Subject; lookup: LookupValues }
  | { kind: "serviceAccountUnmatched"; serviceAccount: Subject; lookup: LookupValues }
  | { kind: "syncFailed"; reason: string };

export type SyncReport = (happening: SyncHappening) => void;
