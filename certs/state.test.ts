import { test } from "node:test";
import assert from "node:assert/strict";
import { generateCa, issueCert } from "./pki.js";
import { secretToState, stateToSecret } from "./secret.js";
import { coversNames, nextCertStep, type CertPolicy, type CertState } from "./state.js";

const HOUR = 3_600_000;
const policy: CertPolicy = { caValidityMs: 10 * HOUR, leafValidityMs: 3 * HOUR, rotateRemainingFraction: 1 / 3, propagationMs: 60_000 };
const names = ["svc.ns.svc", "127.0.0.1"];
const covers = (leaf: string) => coversNames(leaf, names);

async function freshState(now: number): Promise<CertState> {
  const ca = await generateCa("test CA", policy.caValidityMs);
  const leaf = await issueCert(ca, {
    commonName: "svc",
    dnsNames: ["svc.ns.svc"],
    ipAddresses: ["127.0.0.1"],
    usage: "server",
    validityMs: policy.leafValidityMs,
  });
  return { ca, leaf, bundle: [ca.cert], bundleChangedAt: now, leafChangedAt: now };
}

test("no state: create; fresh state: nothing to do", async () => {
  const now = Date.now();
  assert.equal(nextCertStep(undefined, now, policy, covers).kind, "create");
  assert.equal(nextCertStep(await freshState(now), now, policy, covers).kind, "none");
});

test("a leaf near expiry is rotated; a missing SAN too", async () => {
  const now = Date.now();
  const state = await freshState(now);
  assert.equal(nextCertStep(state, now + 2.5 * HOUR, policy, covers).kind, "rotate-leaf");
  assert.equal(nextCertStep(state, now, policy, (leaf) => coversNames(leaf, ["other.ns.svc"])).kind, "rotate-leaf");
});

test("CA rotation: stage in bundle, promote only after propagation, trim the old CA only after the leaf moved", async () => {
  const start = Date.now();
  const state = await freshState(start);
  const late = start + 7.5 * HOUR;
  assert.equal(nextCertStep(state, late, policy, covers).kind, "stage-next-ca");
  // Made "now" in real time but used 7.5 h later: give them room so only the step under test fires.
  const next = await generateCa("next CA", 30 * HOUR);
  const staged: CertState = { ...state, next, bundle: [state.ca.cert, next.cert], bundleChangedAt: late };
  assert.equal(nextCertStep(staged, late + 1_000, policy, covers).kind, "none", "bundle not yet propagated");
  assert.equal(nextCertStep(staged, late + 61_000, policy, covers).kind, "promote-next-ca");
  const leaf = await issueCert(next, { commonName: "svc", dnsNames: ["svc.ns.svc"], ipAddresses: ["127.0.0.1"], usage: "server", validityMs: 30 * HOUR });
  const promoted: CertState = { ca: next, leaf, bundle: staged.bundle, bundleChangedAt: late, leafChangedAt: late + 61_000 };
  assert.equal(nextCertStep(promoted, late + 62_000, policy, covers).kind, "none", "old CA kept while replicas switch");
  const trim = nextCertStep(promoted, late + 122_000, policy, covers);
  assert.equal(trim.kind, "trim-bundle");
  assert.deepEqual(trim.kind === "trim-bundle" ? trim.keep : [], [next.cert]);
});

test("the Secret round-trips the state; a broken Secret is reported", async () => {
  const state = await freshState(Date.now());
  const parsed = secretToState(stateToSecret("s", "ns", state));
  assert.ok(parsed.ok);
  assert.equal(parsed.state.leaf.cert, state.leaf.cert);
  assert.deepEqual(
    parsed.state.bundle.map((pem) => pem.trim()),
    state.bundle.map((pem) => pem.trim()),
  );
  const broken = stateToSecret("s", "ns", state);
  delete broken.data!["tls.key"];
  assert.deepEqual(secretToState(broken), { ok: false, error: "missing tls.key" });
});
