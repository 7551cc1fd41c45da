import { test } from "node:test";
import assert from "node:assert/strict";
import type { Decision } from "./admission.js";
import { enforce, WARN_PREFIX } from "./enforce.js";
import { admissionResponse } from "./respond.js";

const denied: Decision = { allowed: false, code: 403, result: "denied", message: "AzureIdentity objects are managed by azure-msi-operator", warnings: ["w"] };
const errored: Decision = { allowed: false, code: 500, result: "error", message: "could not decide" };
const patched: Decision = { allowed: true, result: "patched", patch: [{ op: "add", path: "/spec/azureIdentity", value: "x" }] };

test("deny mode changes nothing", () => {
  for (const decision of [denied, errored, patched]) assert.deepEqual(enforce(decision, "deny"), { decision, warned: false });
});

test("warn mode lets every refusal through with its reason as the first warning, and nothing else", () => {
  const warned = enforce(denied, "warn");
  assert.equal(warned.warned, true);
  assert.deepEqual(warned.decision, { allowed: true, result: "warned", warnings: [`${WARN_PREFIX}${denied.message}`, "w"] });
  assert.equal(enforce(errored, "warn").decision.allowed, true);
  // What is allowed stays exactly as decided, patch included.
  assert.deepEqual(enforce(patched, "warn"), { decision: patched, warned: false });
  const response = admissionResponse("admission.k8s.io/v1", "u1", warned.decision).response;
  assert.equal(response.allowed, true);
  assert.equal(response.status, undefined);
  assert.match(response.warnings?.[0] ?? "", /^azure-msi-operator \(warn mode\) would deny this request: AzureIdentity objects/);
});
