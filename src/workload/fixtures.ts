// Test fixtures for the FIC controller's unit tests: a desired state and ServiceAccounts, and an
// in-memory FicApi whose answers a test can hold and release one by one, to build the interleavings
// of calls on one MSI that Azure and the network produce, without any wall-clock wait.
import { setImmediate as nextTurn } from "node:timers/promises";
import { lookupLabelKeys } from "../kube/lookup.js";
import type { FicApi } from "../azure/fic.js";
import type { DesiredIdentity, DesiredState } from "../model/desired.js";
import { clusterNameFor, FIC_AUDIENCE, ficName, serviceAccountSubject } from "./names.js";
import { msiKey, type FederatedCredential, type MsiRef } from "./plan.js";
import type { ServiceAccountView } from "./fic-controller.js";

export const keys = lookupLabelKeys("msi.azure.k8s.io/%s")!;
export const ISSUER = "https://oidc.example/c1/";
export const CLUSTER = clusterNameFor(ISSUER);
export const SUB = "00000000-0000-0000-0000-0000000000c9";
export const context = { issuer: ISSUER, cluster: CLUSTER, lookupKeys: keys };

export const msiRef = (name: string, resourceGroup = "rg-fic"): MsiRef => ({ subscriptionId: SUB, resourceGroup, name });

/** The client ID the fake gives an MSI (distinct per MSI, as Azure's are). */
export const clientIdOf = (msi: MsiRef) => `client-${msi.name.toLowerCase()}`;

/** The AzureIdentity an MSI tagged for `namespace` gives. */
export function identity(namespace: string, msi: MsiRef): DesiredIdentity {
  return {
    namespace,
    name: `${msi.name}-id`,
    labels: { [keys.name]: msi.name.toLowerCase(), [keys.resourcegroup]: msi.resourceGroup.toLowerCase(), [keys.subscription]: SUB },
    annotations: {},
    spec: { type: 0, resourceID: msiKey(msi), clientID: clientIdOf(msi) },
    subscriptionId: SUB,
    msiId: msiKey(msi),
    resourceGroup: msi.resourceGroup,
    msiName: msi.name,
  };
}

export function state(...identities: DesiredIdentity[]): DesiredState {
  const byNamespace = new Map<string, Map<string, DesiredIdentity>>();
  for (const id of identities) {
    if (!byNamespace.has(id.namespace)) byNamespace.set(id.namespace, new Map());
    byNamespace.get(id.namespace)!.set(id.name, id);
  }
  return { byNamespace, skipped: [] };
}

/** A ServiceAccount, labelled for `msi` when given. */
export function account(namespace: string, name: string, msi?: MsiRef): ServiceAccountView {
  return {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    labels: msi ? { [keys.name]: msi.name, [keys.resourcegroup]: msi.resourceGroup, [keys.subscription]: msi.subscriptionId } : {},
  };
}

/** This cluster's FIC for a ServiceAccount, as it sits in Azure. */
export function ourFic(namespace: string, name: string): FederatedCredential {
  return { name: ficName(CLUSTER, namespace, name), issuer: ISSUER, subject: serviceAccountSubject(namespace, name), audiences: [FIC_AUDIENCE] };
}

export interface ApiCall {
  method: "list" | "put" | "remove";
  msi: string;
  /** The FIC written (put, remove). */
  fic?: string;
}

export interface HeldCall extends ApiCall {
  /** Lets the call go on: it acts on the state as it is then, like a request whose answer was delayed. */
  release(): void;
}

type Match = (call: ApiCall) => boolean;

/** Azure's answer to a second write on an MSI while one is under way. */
export function concurrentWriteError(): Error {
  return Object.assign(new Error("ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity: Too many writes"), { statusCode: 409 });
}

/**
 * Federated credentials in memory. Records every call when it arrives (`requests`) and when it is
 * answered (`answered`), counts calls in flight per MSI, and holds the calls a test asks it to.
 */
export class MemoryFicApi implements FicApi {
  readonly fics = new Map<string, Map<string, FederatedCredential>>();
  readonly requests: ApiCall[] = [];
  readonly answered: (ApiCall & { ok: boolean })[] = [];
  /** Most calls ever in flight at once on one MSI, and across all. */
  maxInFlightPerMsi = 0;
  maxInFlight = 0;
  private readonly inFlight = new Map<string, number>();
  private readonly holds: { match: Match; times: number }[] = [];
  private readonly failures: { match: Match; error: () => Error; times: number }[] = [];
  /** Calls held now, oldest first (a test releases them in any order). */
  readonly held: HeldCall[] = [];
  /** Called as each request arrives, before anything else: to check an invariant at that instant. */
  onRequest: (call: ApiCall) => void = () => undefined;
  private readonly heldWaiters: (() => void)[] = [];

  seed(msi: MsiRef, ...fics: FederatedCredential[]): void {
    for (const fic of fics) this.on(msi).set(fic.name, { ...fic });
  }

  names(msi: MsiRef): string[] {
    return [...this.on(msi).keys()].sort();
  }

  /** Writes that reached the API (whatever their answer). */
  writes(): ApiCall[] {
    return this.requests.filter((call) => call.method !== "list");
  }

  /** The next `times` calls matching are held until released. */
  hold(match: Match, times = 1): void {
    this.holds.push({ match, times });
  }

  fail(match: Match, error: () => Error, times = 1): void {
    this.failures.push({ match, error, times });
  }

  /** The oldest call held now, once there is one (it stays held until released). */
  async nextHeld(): Promise<HeldCall> {
    while (this.held.length === 0) await new Promise<void>((resolve) => this.heldWaiters.push(resolve));
    return this.held[0]!;
  }

  list(msi: MsiRef, signal?: AbortSignal): Promise<FederatedCredential[]> {
    return this.call({ method: "list", msi: msiKey(msi) }, signal, () => [...this.on(msi).values()].map((fic) => ({ ...fic })));
  }

  put(msi: MsiRef, fic: FederatedCredential, signal?: AbortSignal): Promise<void> {
    return this.call({ method: "put", msi: msiKey(msi), fic: fic.name }, signal, () => {
      this.on(msi).set(fic.name, { name: fic.name, issuer: fic.issuer, subject: fic.subject, audiences: [...fic.audiences] });
    });
  }

  remove(msi: MsiRef, name: string, signal?: AbortSignal): Promise<void> {
    return this.call({ method: "remove", msi: msiKey(msi), fic: name }, signal, () => {
      this.on(msi).delete(name);
    });
  }

  private on(msi: MsiRef): Map<string, FederatedCredential> {
    const key = msiKey(msi);
    let fics = this.fics.get(key);
    if (!fics) this.fics.set(key, (fics = new Map<string, FederatedCredential>()));
    return fics;
  }

  private async call<T>(call: ApiCall, signal: AbortSignal | undefined, act: () => T): Promise<T> {
    this.requests.push(call);
    this.onRequest(call);
    const count = (this.inFlight.get(call.msi) ?? 0) + 1;
    this.inFlight.set(call.msi, count);
    this.maxInFlightPerMsi = Math.max(this.maxInFlightPerMsi, count);
    this.maxInFlight = Math.max(
      this.maxInFlight,
      [...this.inFlight.values()].reduce((a, b) => a + b, 0),
    );
    try {
      const hold = this.holds.find((rule) => rule.times > 0 && rule.match(call));
      if (hold) {
        hold.times--;
        await new Promise<void>((resolve, reject) => {
          const held: HeldCall = { ...call, release: () => settle(resolve) };
          const settle = (then: () => void) => {
            const index = this.held.indexOf(held);
            if (index >= 0) this.held.splice(index, 1);
            then();
          };
          signal?.addEventListener("abort", () => settle(() => reject(signal.reason as Error)), { once: true });
          this.held.push(held);
          for (const wake of this.heldWaiters.splice(0)) wake();
        });
      } else {
        // An answer always comes later, never within the call.
        await nextTurn();
      }
      if (signal?.aborted) throw signal.reason as Error;
      const failure = this.failures.find((rule) => rule.times > 0 && rule.match(call));
      if (failure) {
        failure.times--;
        this.answered.push({ ...call, ok: false });
        throw failure.error();
      }
      const result = act();
      this.answered.push({ ...call, ok: true });
      return result;
    } finally {
      this.inFlight.set(call.msi, this.inFlight.get(call.msi)! - 1);
    }
  }
}

/** Lets pending callbacks run, turn by turn, until `done` holds (at most `turns` turns of the event loop). */
export async function until(done: () => boolean, what: string, turns = 1_000): Promise<void> {
  for (let turn = 0; turn < turns; turn++) {
    if (done()) return;
    await nextTurn();
  }
  throw new Error(`not reached after ${turns} turns: ${what}`);
}
