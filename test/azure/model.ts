import { randomUUID } from "node:crypto";

/** The fake's world: subscriptions and their user-assigned identities, changed by tests at will. */
export interface FakeSubscription {
  subscriptionId: string;
  displayName: string;
  tenantId: string;
  state: "Enabled" | "Disabled" | "Warned" | "PastDue" | "Deleted";
  authorizationSource: string;
  managedByTenants: string[];
  subscriptionPolicies: { locationPlacementId: string; quotaId: string; spendingLimit: "On" | "Off" | "CurrentPeriodOff" };
  tags: Record<string, string>;
}

export interface FakeIdentity {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  clientId: string;
  principalId: string;
  tenantId: string;
  isolationScope: "None" | "Regional";
  tags: Record<string, string>;
  /** Test hook: rewrites this identity's JSON as served, to produce malformed items. */
  mangle?: (json: Record<string, unknown>) => Record<string, unknown>;
}

export type IdentityKey = Pick<FakeIdentity, "subscriptionId" | "resourceGroup" | "name">;
export type NewIdentity = IdentityKey & Partial<Omit<FakeIdentity, keyof IdentityKey>>;

/** A federated identity credential (FIC) on a user-assigned identity: which external tokens it trusts. */
export interface FakeFederatedCredential {
  name: string;
  issuer: string;
  subject: string;
  audiences: string[];
}

// ARM hands IDs back with "resourcegroups" in lower case, whatever the request said.
export function identityId(identity: IdentityKey): string {
  return `/subscriptions/${identity.subscriptionId}/resourcegroups/${identity.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${identity.name}`;
}

/** An identity in the shape of the 2024-11-30 examples (IdentityGet.json). */
export function identityJson(identity: FakeIdentity): Record<string, unknown> {
  const json = {
    id: identityId(identity),
    name: identity.name,
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    location: identity.location,
    tags: { ...identity.tags },
    properties: { tenantId: identity.tenantId, principalId: identity.principalId, clientId: identity.clientId, isolationScope: identity.isolationScope },
  };
  return identity.mangle ? identity.mangle(json) : json;
}

/** A federated identity credential in the shape of the 2024-11-30 examples (FederatedIdentityCredentialCreate.json). */
export function federatedCredentialJson(identity: IdentityKey, credential: FakeFederatedCredential): Record<string, unknown> {
  return {
    id: `${identityId(identity)}/federatedIdentityCredentials/${credential.name}`,
    name: credential.name,
    properties: { issuer: credential.issuer, subject: credential.subject, audiences: [...credential.audiences] },
    type: "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
  };
}

/** A subscription in the shape of the 2022-12-01 examples (GetSubscription.json). */
export function subscriptionJson(subscription: FakeSubscription): Record<string, unknown> {
  return {
    id: `/subscriptions/${subscription.subscriptionId}`,
    subscriptionId: subscription.subscriptionId,
    tenantId: subscription.tenantId,
    displayName: subscription.displayName,
    state: subscription.state,
    subscriptionPolicies: { ...subscription.subscriptionPolicies },
    authorizationSource: subscription.authorizationSource,
    managedByTenants: subscription.managedByTenants.map((tenantId) => ({ tenantId })),
    tags: { ...subscription.tags },
  };
}

const key = (id: string) => id.toLowerCase();

export class FakeModel {
  /** Keyed by lower-cased subscription ID, in insertion order (the listing order). */
  private readonly subscriptionsById = new Map<string, FakeSubscription>();
  /** Keyed by lower-cased resource ID, in insertion order. */
  private readonly identitiesById = new Map<string, FakeIdentity>();

  /** FICs by lower-cased identity ID, then lower-cased FIC name (ARM names are case-insensitive), in creation order. */
  private readonly credentialsById = new Map<string, Map<string, FakeFederatedCredential>>();

  /** Resource groups ("sub/rg", lower-cased); they outlive the identities in them, as in Azure. */
  private readonly resourceGroups = new Set<string>();

  constructor(readonly tenantId: string) {}

  addResourceGroup(subscriptionId: string, resourceGroup: string): void {
    if (!this.subscription(subscriptionId)) this.addSubscription({ subscriptionId });
    this.resourceGroups.add(key(`${subscriptionId}/${resourceGroup}`));
  }

  hasResourceGroup(subscriptionId: string, resourceGroup: string): boolean {
    return this.resourceGroups.has(key(`${subscriptionId}/${resourceGroup}`));
  }

  addSubscription(fields: Partial<FakeSubscription> = {}): FakeSubscription {
    const subscriptionId = fields.subscriptionId ?? randomUUID();
    const subscription: FakeSubscription = {
      displayName: `Subscription ${subscriptionId.slice(0, 8)}`,
      tenantId: this.tenantId,
      state: "Enabled",
      authorizationSource: "RoleBased",
      managedByTenants: [],
      subscriptionPolicies: { locationPlacementId: "Public_2014-09-01", quotaId: "PayAsYouGo_2014-09-01", spendingLimit: "Off" },
      tags: {},
      ...fields,
      subscriptionId,
    };
    this.subscriptionsById.set(key(subscriptionId), subscription);
    return subscription;
  }

  subscription(subscriptionId: string): FakeSubscription | undefined {
    return this.subscriptionsById.get(key(subscriptionId));
  }

  subscriptions(): FakeSubscription[] {
    return [...this.subscriptionsById.values()];
  }

  updateSubscription(subscriptionId: string, changes: Partial<Omit<FakeSubscription, "subscriptionId">>): FakeSubscription {
    const subscription = this.subscription(subscriptionId);
    if (!subscription) throw new Error(`fake: no subscription ${subscriptionId}`);
    return Object.assign(subscription, changes);
  }

  /** Removes the subscription and every identity in it. */
  removeSubscription(subscriptionId: string): void {
    this.subscriptionsById.delete(key(subscriptionId));
    for (const [id, identity] of this.identitiesById) if (key(identity.subscriptionId) === key(subscriptionId)) this.removeIdentity(id);
    for (const group of this.resourceGroups) if (group.startsWith(`${key(subscriptionId)}/`)) this.resourceGroups.delete(group);
  }

  /**
   * Adds (or replaces) an identity; its subscription is created when missing. A replaced identity
   * starts without FICs: in Azure, an identity created again under the same name is a new resource.
   */
  addIdentity(fields: NewIdentity): FakeIdentity {
    this.addResourceGroup(fields.subscriptionId, fields.resourceGroup);
    const identity: FakeIdentity = {
      location: "westeurope",
      clientId: randomUUID(),
      principalId: randomUUID(),
      tenantId: this.tenantId,
      isolationScope: "None",
      tags: {},
      ...fields,
    };
    this.identitiesById.set(key(identityId(identity)), identity);
    this.credentialsById.delete(key(identityId(identity)));
    return identity;
  }

  /** `count` identities `${prefix}-${i}` in one resource group; `fields(i)` customizes each (tags...). */
  addIdentities(
    subscriptionId: string,
    count: number,
    fields: (index: number) => Partial<NewIdentity> = () => ({}),
    options: { prefix?: string; resourceGroup?: string } = {},
  ): FakeIdentity[] {
    const prefix = options.prefix ?? "msi";
    const resourceGroup = options.resourceGroup ?? "rg-fake";
    return Array.from({ length: count }, (_, index) =>
      this.addIdentity({ subscriptionId, resourceGroup, name: `${prefix}-${String(index).padStart(4, "0")}`, ...fields(index) }),
    );
  }

  identity(id: string | IdentityKey): FakeIdentity | undefined {
    return this.identitiesById.get(key(typeof id === "string" ? id : identityId(id)));
  }

  /** Tags, client ID, location...: whatever a portal user could change, visible on the next request. */
  updateIdentity(id: string | IdentityKey, changes: Partial<Omit<FakeIdentity, keyof IdentityKey>>): FakeIdentity {
    const identity = this.identity(id);
    if (!identity) throw new Error(`fake: no identity ${typeof id === "string" ? id : identityId(id)}`);
    return Object.assign(identity, changes);
  }

  /** Removes the identity and its FICs, as deleting an MSI does in Azure. */
  removeIdentity(id: string | IdentityKey): boolean {
    const lowered = key(typeof id === "string" ? id : identityId(id));
    this.credentialsById.delete(lowered);
    return this.identitiesById.delete(lowered);
  }

  /** The identity whose client ID this is (what Entra looks up a token request's client_id in); the first added if several share it. */
  identityByClientId(clientId: string): FakeIdentity | undefined {
    return [...this.identitiesById.values()].find((identity) => key(identity.clientId) === key(clientId));
  }

  /** The FICs of an identity, in creation order (the listing order); none for an unknown identity. */
  federatedCredentials(identity: IdentityKey): FakeFederatedCredential[] {
    return [...(this.credentialsById.get(key(identityId(identity)))?.values() ?? [])];
  }

  federatedCredential(identity: IdentityKey, name: string): FakeFederatedCredential | undefined {
    return this.credentialsById.get(key(identityId(identity)))?.get(key(name));
  }

  /**
   * Creates or replaces a FIC as stored, without Azure's rules (the ARM routes in fic.ts enforce
   * them): for seeding a test. An update keeps its place in the listing, as the name is the key.
   */
  putFederatedCredential(identity: IdentityKey, credential: FakeFederatedCredential): FakeFederatedCredential {
    if (!this.identity(identity)) throw new Error(`fake: no identity ${identityId(identity)} to add a federated credential to`);
    const id = key(identityId(identity));
    let credentials = this.credentialsById.get(id);
    if (!credentials) this.credentialsById.set(id, (credentials = new Map<string, FakeFederatedCredential>()));
    const stored = { ...credential, audiences: [...credential.audiences] };
    credentials.set(key(credential.name), stored);
    return stored;
  }

  removeFederatedCredential(identity: IdentityKey, name: string): boolean {
    return this.credentialsById.get(key(identityId(identity)))?.delete(key(name)) ?? false;
  }

  /** The identities of a subscription (and resource group), in listing order. */
  identities(subscriptionId?: string, resourceGroup?: string): FakeIdentity[] {
    return [...this.identitiesById.values()].filter(
      (identity) =>
        (subscriptionId === undefined || key(identity.subscriptionId) === key(subscriptionId)) &&
        (resourceGroup === undefined || key(identity.resourceGroup) === key(resourceGroup)),
    );
  }
}
