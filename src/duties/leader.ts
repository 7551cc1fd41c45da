import type { LeaderDutyFactory } from "../lifecycle/duty.js";
import { dutySequence } from "../lifecycle/duty.js";
import { lazyDuty } from "./lazy.js";
import { SyncNowDuty, type SyncNowDeps } from "./sync-now.js";
import type { SyncerDutyDeps } from "./syncer.js";

/**
 * The syncer of each term, imported on gaining the Lease (it and the Azure SDK it lists with are a
 * leader's alone), and with a Lease the "sync now" that drives it. Both are built together for one
 * term, so a sync now can only ever reach its own term's syncer, and it stops before the syncer does.
 */
export function syncerDuties(deps: SyncerDutyDeps, syncNow: Omit<SyncNowDeps, "term" | "syncNow"> | undefined): LeaderDutyFactory {
  return (term) =>
    lazyDuty("syncer", async () => {
      const syncer = new (await import("./syncer.js")).SyncerDuty(deps, term);
      if (!syncNow) return syncer;
      return dutySequence("syncer", [syncer, new SyncNowDuty({ ...syncNow, term, syncNow: () => syncer.fullSyncFresh() })]);
    });
}
