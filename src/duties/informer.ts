import type { KubernetesObject } from "@kubernetes/client-node";
import type { Duty } from "../lifecycle/duty.js";
import type { Informer } from "../kube/informer.js";

/** An informer as a duty: started, and running once its first list is in (or aborted). */
export function informerDuty<T extends KubernetesObject>(name: string, informer: Informer<T>): Duty {
  return {
    name,
    async start(signal) {
      informer.start();
      await informer.waitForSync(signal);
    },
    async stop() {
      informer.stop();
    },
  };
}
