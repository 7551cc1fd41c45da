import type { AzureClients } from "./clients.js";
import { toMsi } from "./msi.js";
import type { SubscriptionListing } from "./types.js";

export interface ListingOptions {
  /** `--azure.subscription`; empty: every subscription the credential can read. */
  subscriptionIds?: readonly string[];
  /** Subscriptions listed at the same time (pages within one are sequential). */
  concurrency?: number;
  abortSignal?: AbortSignal;
}

export const DEFAULT_LISTING_CONCURRENCY = 4;

/** Why one subscription's listing is incomplete, with the SDK's error as `cause`. */
export class AzureListingError extends Error {
  readonly statusCode: number | undefined;
  readonly code: string | undefined;
  constructor(
    readonly subscriptionId: string,
    readonly stage: "subscription" | "identities",
    readonly page: number,
    cause: unknown,
  ) {
    const where = stage === "subscription" ? "reading the subscription" : `listing identities (page ${page})`;
    super(`subscription ${subscriptionId}: ${where} failed: ${describe(cause)}`, { cause });
    this.name = "AzureListingError";
    const details = cause as { statusCode?: unknown; code?: unknown };
    this.statusCode = typeof details.statusCode === "number" ? details.statusCode : undefined;
    this.code = typeof details.code === "string" ? details.code : undefined;
  }
}

/**
 * Enumerating "all subscriptions" failed part way. There is no per-subscription result to mark
 * incomplete for the ones not seen, and listing only the ones seen would look like a complete
 * listing with fewer subscriptions (which pruning would act on), so this fails the whole listing.
 */
export class SubscriptionDiscoveryError extends Error {
  constructor(
    readonly found: readonly string[],
    cause: unknown,
  ) {
    super(`listing the subscriptions the credential can read failed after ${found.length} found: ${describe(cause)}`, { cause });
    this.name = "SubscriptionDiscoveryError";
  }
}

interface SubscriptionRef {
  subscriptionId: string;
  displayName?: string;
  tenantId?: string;
}

/**
 * Every user-assigned identity of the configured subscriptions (or of all the credential sees),
 * one result per subscription. A subscription that fails is returned with `complete: false`, its
 * error and whatever was read before it failed; it never hides the others.
 */
export async function listManagedIdentities(clients: AzureClients, options: ListingOptions = {}): Promise<SubscriptionListing[]> {
  const configured = uniqueIds(options.subscriptionIds ?? []);
  if (configured.length > 0) {
    return mapLimited(configured, options.concurrency ?? DEFAULT_LISTING_CONCURRENCY, (subscriptionId) =>
      listConfiguredSubscription(clients, subscriptionId, options.abortSignal),
    );
  }
  const discovered = await discoverSubscriptions(clients, options.abortSignal);
  return mapLimited(discovered, options.concurrency ?? DEFAULT_LISTING_CONCURRENCY, (subscription) =>
    listSubscriptionIdentities(clients, subscription, options.abortSignal),
  );
}

export async function discoverSubscriptions(clients: AzureClients, abortSignal?: AbortSignal): Promise<SubscriptionRef[]> {
  const found: SubscriptionRef[] = [];
  try {
    for await (const subscription of clients.subscriptions.subscriptions.list({ abortSignal })) {
      if (subscription.subscriptionId) found.push(refOf(subscription.subscriptionId, subscription));
    }
  } catch (error) {
    throw new SubscriptionDiscoveryError(
      found.map((subscription) => subscription.subscriptionId),
      error,
    );
  }
  return uniqueBy(found, (subscription) => subscription.subscriptionId.toLowerCase());
}

/** A configured subscription is read first: a typo or a missing role shows up as its own error. */
async function listConfiguredSubscription(clients: AzureClients, subscriptionId: string, abortSignal?: AbortSignal): Promise<SubscriptionListing> {
  const started = performance.now();
  let ref: SubscriptionRef;
  try {
    const subscription = await clients.subscriptions.subscriptions.get(subscriptionId, { abortSignal });
    ref = refOf(subscription.subscriptionId ?? subscriptionId, subscription);
  } catch (error) {
    const failed: SubscriptionListing = {
      subscriptionId,
      identities: [],
      skipped: [],
      complete: false,
      error: new AzureListingError(subscriptionId, "subscription", 0, error),
      pages: 0,
      durationMs: 0,
    };
    failed.durationMs = performance.now() - started;
    return failed;
  }
  const listing = await listSubscriptionIdentities(clients, ref, abortSignal);
  listing.durationMs = performance.now() - started;
  return listing;
}

/** All pages of one subscription's identities; an error keeps what the earlier pages gave. */
export async function listSubscriptionIdentities(
  clients: AzureClients,
  subscription: SubscriptionRef,
  abortSignal?: AbortSignal,
): Promise<SubscriptionListing> {
  const started = performance.now();
  const listing: SubscriptionListing = { ...subscription, identities: [], skipped: [], complete: false, pages: 0, durationMs: 0 };
  try {
    const pages = clients.msi(subscription.subscriptionId).userAssignedIdentities.listBySubscription({ abortSignal }).byPage();
    for await (const page of pages) {
      listing.pages++;
      for (const item of page) {
        const parsed = toMsi(item);
        if (parsed.ok) listing.identities.push(parsed.msi);
        else listing.skipped.push(parsed.skipped);
      }
    }
    listing.complete = true;
  } catch (error) {
    listing.error = new AzureListingError(subscription.subscriptionId, "identities", listing.pages + 1, error);
  }
  listing.durationMs = performance.now() - started;
  return listing;
}

function refOf(subscriptionId: string, subscription: { displayName?: string; tenantId?: string }): SubscriptionRef {
  return {
    subscriptionId,
    ...(subscription.displayName ? { displayName: subscription.displayName } : {}),
    ...(subscription.tenantId ? { tenantId: subscription.tenantId } : {}),
  };
}

function uniqueIds(ids: readonly string[]): string[] {
  return uniqueBy(
    ids.map((id) => id.trim()).filter((id) => id !== ""),
    (id) => id.toLowerCase(),
  );
}

function uniqueBy<T>(items: readonly T[], key: (item: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((item) => !seen.has(key(item)) && seen.add(key(item)));
}

/** Results in input order, at most `limit` in flight. `work` must not throw (ours never do). */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const details = error as { statusCode?: unknown; code?: unknown };
  const status = typeof details.statusCode === "number" ? `HTTP ${details.statusCode}` : undefined;
  const code = typeof details.code === "string" ? details.code : undefined;
  const prefix = [status, code].filter((part) => part !== undefined).join(" ");
  return prefix ? `${prefix}: ${error.message}` : error.message;
}
