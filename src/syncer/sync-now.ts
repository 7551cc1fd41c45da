// "Sync now": a platform admin annotates the leader Lease with a new value; the leader runs one full
// sync with a fresh Azure listing (whatever --sync.locktime says) and records on the Lease which value
// it handled and when. Recording it on the Lease makes a request count once, also when the leader
// changes, and lets every leader keep the minimum interval between requested syncs.

/** Set by an admin (any new value asks once; a timestamp is the natural choice). */
export const SYNC_NOW_ANNOTATION = "msi.azure.k8s.io/sync-now";
/** Set by the leader: the request value it handled. */
export const SYNC_NOW_HANDLED_ANNOTATION = "msi.azure.k8s.io/sync-now-handled";
/** Set by the leader: when it handled it (RFC 3339, UTC). */
export const SYNC_NOW_HANDLED_AT_ANNOTATION = "msi.azure.k8s.io/sync-now-handled-at";

export interface SyncNowState {
  requested: string | undefined;
  handled: string | undefined;
  /** Epoch ms; undefined when absent or unreadable. */
  handledAtMs: number | undefined;
}

export type SyncNowDecision = { kind: "none" } | { kind: "run"; value: string } | { kind: "defer"; value: string; untilMs: number };

export function syncNowState(annotations: Readonly<Record<string, string>> | undefined): SyncNowState {
  const requested = annotations?.[SYNC_NOW_ANNOTATION]?.trim();
  const at = Date.parse(annotations?.[SYNC_NOW_HANDLED_AT_ANNOTATION] ?? "");
  return {
    requested: requested === "" ? undefined : requested,
    handled: annotations?.[SYNC_NOW_HANDLED_ANNOTATION],
    handledAtMs: Number.isNaN(at) ? undefined : at,
  };
}

/**
 * Run a request not handled yet, unless the last handled one is less than `minIntervalMs` ago: then
 * it waits until the interval is over. A handled time in the future (another leader's clock) waits
 * at most one interval from now, so a skewed clock can delay a request but never block it.
 */
export function decideSyncNow(state: SyncNowState, nowMs: number, minIntervalMs: number): SyncNowDecision {
  const value = state.requested;
  if (value === undefined || value === state.handled) return { kind: "none" };
  if (state.handledAtMs === undefined) return { kind: "run", value };
  const untilMs = Math.min(state.handledAtMs + minIntervalMs, nowMs + minIntervalMs);
  return untilMs > nowMs ? { kind: "defer", value, untilMs } : { kind: "run", value };
}

/** The annotations the leader writes when it takes a request on. */
export function handledAnnotations(value: string, nowMs: number): Record<string, string> {
  return { [SYNC_NOW_HANDLED_ANNOTATION]: value, [SYNC_NOW_HANDLED_AT_ANNOTATION]: new Date(nowMs).toISOString() };
}
