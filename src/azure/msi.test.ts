import { test } from "node:test";
import assert from "node:assert/strict";
import type { Identity } from "@azure/arm-msi";
import { parseMsiId, toMsi } from "./msi.js";

const ID = "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourcegroups/RG-Apps/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shop";

test("resource IDs parse case-insensitively, keeping the names as written", () => {
  assert.deepEqual(parseMsiId(ID), { subscriptionId: "00000000-0000-0000-0000-0000000000a1", resourceGroup: "RG-Apps", name: "shop" });
  assert.deepEqual(parseMsiId("/SUBSCRIPTIONS/s/resourceGroups/rg/PROVIDERS/microsoft.managedidentity/USERASSIGNEDIDENTITIES/n/"), {
    subscriptionId: "s",
    resourceGroup: "rg",
    name: "n",
  });
  assert.equal(parseMsiId("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/n"), undefined);
  assert.equal(
    parseMsiId("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/n/federatedIdentityCredentials/f"),
    undefined,
  );
});

test("an ARM identity becomes an Msi with resource group and subscription from its ID", () => {
  const item: Identity = {
    id: ID,
    name: "shop",
    type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    location: "westeurope",
    tags: { k8snamespace: "team-a" },
    ...{ clientId: "c1", principalId: "p1", tenantId: "t1" },
  };
  assert.deepEqual(toMsi(item), {
    ok: true,
    msi: {
      id: ID,
      name: "shop",
      location: "westeurope",
      resourceGroup: "RG-Apps",
      subscriptionId: "00000000-0000-0000-0000-0000000000a1",
      clientId: "c1",
      tenantId: "t1",
      principalId: "p1",
      tags: { k8snamespace: "team-a" },
      type: "Microsoft.ManagedIdentity/userAssignedIdentities",
    },
  });
});

test("missing optional fields get neutral values; non-string tag values are dropped", () => {
  const item = { id: ID, clientId: "c1", tags: { good: "yes", bad: 7 } } as unknown as Identity;
  const result = toMsi(item);
  assert.ok(result.ok);
  assert.equal(result.msi.name, "shop");
  assert.equal(result.msi.location, "");
  assert.equal(result.msi.principalId, "");
  assert.equal(result.msi.type, "Microsoft.ManagedIdentity/userAssignedIdentities");
  assert.deepEqual(result.msi.tags, { good: "yes" });
});

test("items that cannot be an AzureIdentity are skipped with a reason, never guessed", () => {
  assert.deepEqual(toMsi({ name: "orphan", location: "x", ...{ clientId: "c" } }), { ok: false, skipped: { id: "orphan", reason: "no resource ID" } });
  assert.deepEqual(toMsi({ id: ID, location: "x" }), { ok: false, skipped: { id: ID, reason: "no clientId" } });
  assert.deepEqual(toMsi({ id: ID, location: "x", ...{ clientId: "  " } }), { ok: false, skipped: { id: ID, reason: "no clientId" } });
  const vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/n";
  assert.deepEqual(toMsi({ id: vm, location: "x", ...{ clientId: "c" } }), {
    ok: false,
    skipped: { id: vm, reason: `resource ID is not that of a user-assigned identity: "${vm}"` },
  });
});
