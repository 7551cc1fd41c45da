import type { Duty } from "../lifecycle/duty.js";

/**
 * A duty whose code is imported when it starts, not when the process does: a replica that never
 * gains the Lease never loads the syncer (nor, through it, the Azure SDK). `load` runs on every
 * start (a fresh duty per term, as the DutyManager wants); the module cache makes later ones cheap.
 */
export function lazyDuty(name: string, load: () => Promise<Duty>): Duty {
  let inner: Duty | undefined;
  return {
    name,
    async start(signal) {
      const duty = await load();
      // Leadership may have been lost while the module loaded: then nothing of the duty runs.
      signal.throwIfAborted();
      inner = duty;
      await duty.start(signal);
    },
    async stop() {
      await inner?.stop();
    },
  };
}
