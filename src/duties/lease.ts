import type { V1Lease } from "@kubernetes/client-node";
import type { Informer } from "../kube/informer.js";
import type { LeaderElector } from "../leader/elector.js";
import type { Duty } from "../lifecycle/duty.js";

/**
 * Campaigning for the Lease, and watching it so a follower tries at once when the leader releases
 * it instead of at its next retry. Stopping releases the Lease when this replica holds it.
 */
export class LeaseDuty implements Duty {
  readonly name = "leader election";
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly elector: LeaderElector,
    private readonly lease: Informer<V1Lease>,
  ) {}

  async start(): Promise<void> {
    const released = (lease: V1Lease) => {
      if ((lease.spec?.holderIdentity ?? "") === "") this.elector.nudge();
    };
    this.unsubscribe.push(
      this.lease.on("add", released),
      this.lease.on("update", released),
      this.lease.on("delete", () => this.elector.nudge()),
    );
    this.lease.start();
    this.elector.start();
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    this.lease.stop();
    await this.elector.stop(true);
  }
}
