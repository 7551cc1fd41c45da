/** One user-assigned managed identity, as the operator uses it: plain data parsed from ARM. */
export interface Msi {
  /** The resource ID exactly as ARM returned it (compare case-insensitively). */
  id: string;
  name: string;
  location: string;
  /** Parsed from the ID. */
  resourceGroup: string;
  /** Parsed from the ID. */
  subscriptionId: string;
  clientId: string;
  tenantId: string;
  principalId: string;
  tags: Record<string, string>;
  type: string;
}

/** An item ARM listed that cannot be used as an MSI, and why. */
export interface SkippedItem {
  /** The item's ID or name when it had one. */
  id?: string;
  reason: string;
}

/** One subscription's part of an Azure listing. */
export interface SubscriptionListing {
  subscriptionId: string;
  /** From the subscription itself, when it could be read. */
  displayName?: string;
  tenantId?: string;
  /** What was read, also when the listing broke off part way (see `complete`). */
  identities: Msi[];
  skipped: SkippedItem[];
  /** The subscription and every page of its identities were read without error. */
  complete: boolean;
  error?: Error;
  pages: number;
  durationMs: number;
}

/** Where an MSI lives, as Azure spells it. */
export interface MsiRef {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

/** A federated identity credential on an MSI, as much of it as the operator reads and writes. */
export interface FederatedCredential {
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
}
