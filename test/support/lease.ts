import { CoordinationV1Api } from "@kubernetes/client-node";
import { OPERATOR_NAMESPACE, type ControlPlane } from "../controlplane/controlplane.js";

/** The operator's default Lease name (--lease.name). */
export const DEFAULT_LEASE = "azure-msi-operator-leader";

/**
 * Resolves once `holder` has renewed the Lease `count` times from now on. Each renewal is a Lease
 * update that every replica's Lease cache sees and every replica's elector has had a retry period to
 * act on: the system's own clock, for a check that something did NOT happen "in the meantime", which
 * a fixed sleep would pass on a machine too slow to do anything in it.
 */
export async function leaseRenewals(plane: ControlPlane, holder: string, count: number, options: { name?: string; timeoutMs?: number } = {}): Promise<void> {
  const leases = plane.api("admin", CoordinationV1Api);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const seen = new Set<string>();
  let first: string | undefined;
  for (;;) {
    const lease = await leases.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name: options.name ?? DEFAULT_LEASE }).catch(() => undefined);
    const renewTime = lease?.spec?.renewTime ? new Date(lease.spec.renewTime).toISOString() : undefined;
    if (renewTime && lease?.spec?.holderIdentity === holder) {
      // The renewal already there when we started does not count.
      first ??= renewTime;
      if (renewTime !== first) seen.add(renewTime);
      if (seen.size >= count) return;
    }
    if (Date.now() > deadline) throw new Error(`${holder} renewed the Lease ${seen.size} of ${count} times within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
