// CertManager.reconcile() against a real API server, as the operator's service account (RBAC from
// manifests/), with the shipped webhook configurations installed. The manager's clock is injected;
// certificates are issued in real time, so a test that needs a certificate near its end seeds the
// Secret with one issued for a short validity and moves the clock by minutes, not hours.
import { after, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { Writable } from "node:stream";
import { AdmissionregistrationV1Api, CoreV1Api, type KubernetesObject, type V1Secret } from "@kubernetes/client-node";
import pino, { type Logger } from "pino";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_USER } from "../test/controlplane/controlplane.js";
import { reservePort } from "../test/controlplane/ports.js";
import { applyOperatorRbac, eventually } from "../test/support/operator.js";
import { installWebhooks } from "../test/support/webhooks.js";
import { statusCode } from "../src/kube/errors.js";
import { CertManager, serviceNames } from "./manager.js";
import { generateCa, issueCert, type Pem } from "./pki.js";
import { secretToState, stateToSecret } from "./secret.js";
import type { CertPolicy, CertState } from "./state.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// The names the shipped RBAC (resourceNames) and webhooks.yaml use.
const SECRET = "azure-msi-operator-webhook-tls";
const SERVICE = "azure-msi-operator-webhook";
const CONFIG = "azure-msi-operator";
const EXTRA_SANS = ["127.0.0.1"];
const policy: CertPolicy = { caValidityMs: 10 * HOUR, leafValidityMs: 3 * HOUR, rotateRemainingFraction: 1 / 3, propagationMs: MINUTE };
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const pems = (text: string) => (text.match(PEM_BLOCK) ?? []).map((pem) => pem.trim());
const same = (a: string, b: string) => a.trim() === b.trim();
const unb64 = (text: string | undefined) => Buffer.from(text ?? "", "base64").toString("utf8");

/** A clock that stands still unless set: `at(ms)` is that far after the test started. */
class ManualClock {
  private readonly start = Date.now();
  private time = this.start;
  readonly now = (): number => this.time;
  at(offsetMs: number): this {
    this.time = this.start + offsetMs;
    return this;
  }
}

function capturingLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "info" }, sink), lines };
}

async function leafFor(ca: Pem, validityMs: number, names: { dnsNames?: string[]; ipAddresses?: string[] } = {}): Promise<Pem> {
  return issueCert(ca, {
    commonName: `${SERVICE}.${OPERATOR_NAMESPACE}.svc`,
    dnsNames: names.dnsNames ?? serviceNames(SERVICE, OPERATOR_NAMESPACE),
    ipAddresses: names.ipAddresses ?? EXTRA_SANS,
    usage: "server",
    validityMs,
  });
}

describe("CertManager against a real API server", () => {
  let plane: ControlPlane;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  let webhookPort: number;
  let installed: KubernetesObject[];

  const manager = (options: { clock?: ManualClock; canWrite?: () => boolean; log?: Logger } = {}) => {
    const rotations = { count: 0 };
    const instance = new CertManager(
      {
        namespace: OPERATOR_NAMESPACE,
        secretName: SECRET,
        serviceName: SERVICE,
        extraSans: EXTRA_SANS,
        validatingWebhookConfiguration: CONFIG,
        mutatingWebhookConfiguration: CONFIG,
        policy,
        now: (options.clock ?? new ManualClock()).now,
      },
      {
        core: plane.api("operator", CoreV1Api),
        admission: plane.api("operator", AdmissionregistrationV1Api),
        log: options.log ?? pino({ level: "silent" }),
        canWrite: options.canWrite ?? (() => true),
        onRotation: () => rotations.count++,
      },
    );
    return { manager: instance, rotations };
  };

  const readSecret = () => core.readNamespacedSecret({ name: SECRET, namespace: OPERATOR_NAMESPACE });
  const secretState = async (): Promise<CertState> => {
    const parsed = secretToState(await readSecret());
    assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
    return parsed.state;
  };
  const seed = (state: CertState) => core.createNamespacedSecret({ namespace: OPERATOR_NAMESPACE, body: stateToSecret(SECRET, OPERATOR_NAMESPACE, state) });

  /** Every webhook's caBundle (decoded, "" when unset), validating ones first. */
  const caBundles = async (): Promise<{ webhook: string; bundle: string }[]> => {
    const validating = await admission.readValidatingWebhookConfiguration({ name: CONFIG }).catch(() => undefined);
    const mutating = await admission.readMutatingWebhookConfiguration({ name: CONFIG }).catch(() => undefined);
    return [...(validating?.webhooks ?? []), ...(mutating?.webhooks ?? [])].map((webhook) => ({
      webhook: webhook.name,
      bundle: webhook.clientConfig.caBundle ? unb64(webhook.clientConfig.caBundle) : "",
    }));
  };
  const installedWebhookCount = () => installed.reduce((sum, object) => sum + ((object as { webhooks?: unknown[] }).webhooks?.length ?? 0), 0);

  /** The operator's writes to Secrets and webhook configurations, from the API server's audit log. */
  const operatorWrites = async () =>
    (await plane.auditEvents())
      .filter((event) => event.user.username === OPERATOR_USER && ["create", "update", "patch", "delete"].includes(event.verb))
      .filter((event) => ["secrets", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"].includes(event.objectRef?.resource ?? ""))
      .map((event) => `${event.verb} ${event.objectRef?.resource} ${event.responseStatus?.code}`);
  const writesDuring = async <T>(action: () => Promise<T>): Promise<{ result: T; writes: string[] }> => {
    const before = (await operatorWrites()).length;
    const result = await action();
    return { result, writes: (await operatorWrites()).slice(before) };
  };

  before(async () => {
    plane = await ControlPlane.start({ crds: false });
    await applyOperatorRbac(plane);
    core = plane.api("admin", CoreV1Api);
    admission = plane.api("admin", AdmissionregistrationV1Api);
    webhookPort = await reservePort();
  });
  beforeEach(async () => {
    const gone = (error: unknown) => {
      if (statusCode(error) !== 404) throw error;
    };
    await core.deleteNamespacedSecret({ name: SECRET, namespace: OPERATOR_NAMESPACE }).catch(gone);
    await admission.deleteValidatingWebhookConfiguration({ name: CONFIG }).catch(gone);
    await admission.deleteMutatingWebhookConfiguration({ name: CONFIG }).catch(gone);
    installed = await installWebhooks(plane, webhookPort);
    assert.ok(
      (await caBundles()).every(({ bundle }) => bundle === ""),
      "freshly installed: no caBundle yet",
    );
  });
  after(async () => plane?.stop());

  test("on a fresh cluster: creates the CA and serving certificate Secret and injects the caBundle into every webhook; a second pass writes nothing", async () => {
    const clock = new ManualClock();
    const { manager: m, rotations } = manager({ clock });
    const { result: state, writes } = await writesDuring(() => m.reconcile());
    assert.ok(state);
    assert.deepEqual(writes.sort(), ["create secrets 201", "patch mutatingwebhookconfigurations 200", "patch validatingwebhookconfigurations 200"]);

    const secret = await readSecret();
    assert.equal(secret.metadata?.labels?.["app.kubernetes.io/managed-by"], "azure-msi-operator");
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), ["ca-bundle.crt", "ca.crt", "ca.key", "tls.crt", "tls.key"]);
    const stored = await secretState();
    assert.ok(same(stored.ca.cert, state.ca.cert) && same(stored.leaf.cert, state.leaf.cert), "what reconcile returns is what the Secret holds");
    assert.equal(stored.bundleChangedAt, clock.now());
    assert.equal(stored.leafChangedAt, clock.now());
    assert.deepEqual(
      stored.bundle.map((pem) => pem.trim()),
      [state.ca.cert.trim()],
    );

    const ca = new X509Certificate(stored.ca.cert);
    const leaf = new X509Certificate(stored.leaf.cert);
    assert.equal(ca.ca, true);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.verify(ca.publicKey), "serving certificate signed by the CA");
    assert.ok(leaf.checkPrivateKey(createPrivateKey(stored.leaf.key)), "tls.key belongs to tls.crt");
    assert.ok(ca.checkPrivateKey(createPrivateKey(stored.ca.key)), "ca.key belongs to ca.crt");
    for (const name of serviceNames(SERVICE, OPERATOR_NAMESPACE)) assert.equal(leaf.checkHost(name), name, `SAN ${name}`);
    assert.equal(leaf.checkIP("127.0.0.1"), "127.0.0.1", "--webhook.tls.san IP");
    const leafLeftMs = Date.parse(leaf.validTo) - Date.now();
    assert.ok(Math.abs(leafLeftMs - policy.leafValidityMs) < 5 * MINUTE, `serving certificate valid for the policy's 3 h (${leafLeftMs} ms)`);
    assert.ok(Math.abs(Date.parse(ca.validTo) - Date.now() - policy.caValidityMs) < 5 * MINUTE, "CA valid for the policy's 10 h");

    const bundles = await caBundles();
    assert.equal(bundles.length, installedWebhookCount());
    for (const { webhook, bundle } of bundles) assert.deepEqual(pems(bundle), [stored.ca.cert.trim()], webhook);
    assert.equal(rotations.count, 0, "creating is not a rotation");

    const again = await writesDuring(() => m.reconcile());
    assert.deepEqual(again.writes, [], "nothing differs, nothing written");
    assert.ok(again.result && same(again.result.leaf.cert, stored.leaf.cert) && same(again.result.ca.cert, stored.ca.cert));
    assert.equal(rotations.count, 0);
  });

  test("keeps every caBundle right: one someone replaced and one someone removed are put back, the Secret is left alone", async () => {
    const { manager: m } = manager();
    const state = await m.reconcile();
    assert.ok(state);
    const other = await generateCa("someone else", HOUR);
    await plane.kubectlOrThrow("admin", [
      "patch",
      "validatingwebhookconfiguration",
      CONFIG,
      "--type=json",
      "-p",
      JSON.stringify([{ op: "replace", path: "/webhooks/1/clientConfig/caBundle", value: Buffer.from(other.cert).toString("base64") }]),
    ]);
    await plane.kubectlOrThrow("admin", [
      "patch",
      "mutatingwebhookconfiguration",
      CONFIG,
      "--type=json",
      "-p",
      JSON.stringify([{ op: "remove", path: "/webhooks/0/clientConfig/caBundle" }]),
    ]);
    const tampered = await caBundles();
    assert.equal(tampered.filter(({ bundle }) => pems(bundle)[0] === state.ca.cert.trim()).length, installedWebhookCount() - 2, "two webhooks tampered with");

    const { writes } = await writesDuring(() => m.reconcile());
    assert.deepEqual(writes.sort(), ["patch mutatingwebhookconfigurations 200", "patch validatingwebhookconfigurations 200"]);
    for (const { webhook, bundle } of await caBundles()) assert.deepEqual(pems(bundle), [state.ca.cert.trim()], webhook);
  });

  test("rotates a serving certificate near its expiry under the same CA, once", async () => {
    const clock = new ManualClock();
    const ca = await generateCa("seeded CA", 10 * HOUR);
    // 1 h validity: at +45 min less than a third of it remains.
    const oldLeaf = await leafFor(ca, HOUR);
    await seed({ ca, leaf: oldLeaf, bundle: [ca.cert], bundleChangedAt: clock.now() - HOUR, leafChangedAt: clock.now() - HOUR });
    const seededVersion = (await readSecret()).metadata?.resourceVersion;
    const { manager: m, rotations } = manager({ clock: clock.at(45 * MINUTE) });

    const { result: state, writes } = await writesDuring(() => m.reconcile());
    assert.ok(state);
    assert.ok(writes.includes("update secrets 200"), writes.join(", "));
    const stored = await secretState();
    assert.notEqual((await readSecret()).metadata?.resourceVersion, seededVersion);
    assert.ok(!same(stored.leaf.cert, oldLeaf.cert), "a new serving certificate");
    assert.ok(same(stored.ca.cert, ca.cert), "same CA");
    assert.deepEqual(
      stored.bundle.map((pem) => pem.trim()),
      [ca.cert.trim()],
      "bundle unchanged",
    );
    assert.ok(new X509Certificate(stored.leaf.cert).verify(new X509Certificate(ca.cert).publicKey));
    assert.ok(Date.parse(new X509Certificate(stored.leaf.cert).validTo) - Date.now() > 2.5 * HOUR, "issued for the policy's validity");
    assert.equal(stored.leafChangedAt, clock.now());
    assert.equal(stored.bundleChangedAt, clock.now() - 45 * MINUTE - HOUR, "the bundle did not change");
    assert.equal(rotations.count, 1);
    for (const { webhook, bundle } of await caBundles()) assert.deepEqual(pems(bundle), [ca.cert.trim()], webhook);

    const again = await writesDuring(() => m.reconcile());
    assert.deepEqual(again.writes, [], "the new certificate is not near expiry: nothing to do");
    assert.equal(rotations.count, 1);
  });

  test("replaces a serving certificate that lacks a required name, and one the CA did not sign", async () => {
    const clock = new ManualClock();
    const ca = await generateCa("seeded CA", 10 * HOUR);
    const { manager: m, rotations } = manager({ clock });

    await seed({ ca, leaf: await leafFor(ca, 3 * HOUR, { ipAddresses: [] }), bundle: [ca.cert], bundleChangedAt: clock.now(), leafChangedAt: clock.now() });
    await m.reconcile();
    const renamed = new X509Certificate((await secretState()).leaf.cert);
    assert.equal(renamed.checkIP("127.0.0.1"), "127.0.0.1", "the missing IP SAN is there now");
    assert.ok(renamed.verify(new X509Certificate(ca.cert).publicKey));
    assert.equal(rotations.count, 1);

    await core.deleteNamespacedSecret({ name: SECRET, namespace: OPERATOR_NAMESPACE });
    const stranger = await generateCa("stranger", 10 * HOUR);
    await seed({ ca, leaf: await leafFor(stranger, 3 * HOUR), bundle: [ca.cert], bundleChangedAt: clock.now(), leafChangedAt: clock.now() });
    await m.reconcile();
    const resigned = await secretState();
    assert.ok(new X509Certificate(resigned.leaf.cert).verify(new X509Certificate(ca.cert).publicKey), "now signed by the current CA");
    assert.ok(same(resigned.ca.cert, ca.cert));
    assert.equal(rotations.count, 2);
  });

  test("CA rotation, one step per pass: the next CA enters the bundle, signs the leaf only after propagation, the old CA leaves only after the leaf moved", async () => {
    const clock = new ManualClock();
    // A CA with 1 h validity: at +45 min it is near expiry; its serving certificate is not.
    const oldCa = await generateCa("old CA", HOUR);
    const oldLeaf = await leafFor(oldCa, 3 * HOUR);
    await seed({ ca: oldCa, leaf: oldLeaf, bundle: [oldCa.cert], bundleChangedAt: clock.now() - HOUR, leafChangedAt: clock.now() - HOUR });
    const { manager: m, rotations } = manager({ clock });
    const start = 45 * MINUTE;
    const bundlesNow = async () => (await caBundles()).map(({ bundle }) => pems(bundle));
    const all = (bundle: string[]) => Array.from({ length: installedWebhookCount() }, () => bundle);

    // 0. the CA is far from expiry yet: only the caBundle is injected.
    let pass = await writesDuring(() => m.reconcile());
    assert.deepEqual(pass.writes.sort(), ["patch mutatingwebhookconfigurations 200", "patch validatingwebhookconfigurations 200"]);
    assert.equal((await secretState()).next, undefined);
    assert.equal(rotations.count, 0);

    // 1. stage: the next CA joins the bundle; nothing is signed by it yet.
    clock.at(start);
    pass = await writesDuring(() => m.reconcile());
    const stage = await secretState();
    assert.ok(stage.next, "next CA staged");
    const nextCa = stage.next;
    assert.ok(same(stage.ca.cert, oldCa.cert), "still signing with the old CA");
    assert.ok(same(stage.leaf.cert, oldLeaf.cert), "the leaf stays until the bundle has propagated");
    assert.deepEqual(
      stage.bundle.map((pem) => pem.trim()),
      [oldCa.cert.trim(), nextCa.cert.trim()],
    );
    assert.equal(stage.bundleChangedAt, clock.now());
    assert.deepEqual(await bundlesNow(), all([oldCa.cert.trim(), nextCa.cert.trim()]), "API servers trust both");
    assert.ok(Date.parse(new X509Certificate(nextCa.cert).validTo) - Date.now() > 9 * HOUR, "the next CA has the policy's validity");
    assert.equal(rotations.count, 1);
    assert.deepEqual(pass.writes.sort(), ["patch mutatingwebhookconfigurations 200", "patch validatingwebhookconfigurations 200", "update secrets 200"]);

    // 2. not yet propagated: nothing.
    clock.at(start + 1_000);
    pass = await writesDuring(() => m.reconcile());
    assert.deepEqual(pass.writes, []);
    assert.equal(rotations.count, 1);

    // 3. promote: the next CA signs a new leaf; both CAs stay in the bundle.
    clock.at(start + MINUTE + 1_000);
    pass = await writesDuring(() => m.reconcile());
    assert.deepEqual(pass.writes, ["update secrets 200"], "the caBundle already has both CAs");
    const promoted = await secretState();
    assert.ok(same(promoted.ca.cert, nextCa.cert), "the next CA is the CA now");
    assert.equal(promoted.next, undefined);
    assert.equal((await readSecret()).data?.["ca-next.crt"], undefined);
    assert.ok(!same(promoted.leaf.cert, oldLeaf.cert));
    assert.ok(new X509Certificate(promoted.leaf.cert).verify(new X509Certificate(nextCa.cert).publicKey), "leaf signed by the new CA");
    assert.deepEqual(
      promoted.bundle.map((pem) => pem.trim()),
      [oldCa.cert.trim(), nextCa.cert.trim()],
      "old CA kept while replicas switch",
    );
    assert.equal(promoted.leafChangedAt, clock.now());
    assert.deepEqual(await bundlesNow(), all([oldCa.cert.trim(), nextCa.cert.trim()]));
    assert.equal(rotations.count, 2);

    // 4. the leaf has not propagated: the old CA stays.
    clock.at(start + MINUTE + 2_000);
    pass = await writesDuring(() => m.reconcile());
    assert.deepEqual(pass.writes, []);

    // 5. trim: the old CA leaves the Secret and every caBundle.
    clock.at(start + 2 * MINUTE + 2_000);
    pass = await writesDuring(() => m.reconcile());
    assert.deepEqual(pass.writes.sort(), ["patch mutatingwebhookconfigurations 200", "patch validatingwebhookconfigurations 200", "update secrets 200"]);
    const trimmed = await secretState();
    assert.deepEqual(
      trimmed.bundle.map((pem) => pem.trim()),
      [nextCa.cert.trim()],
    );
    assert.ok(same(trimmed.leaf.cert, promoted.leaf.cert), "the leaf is not touched by a trim");
    assert.deepEqual(await bundlesNow(), all([nextCa.cert.trim()]));
    assert.equal(rotations.count, 3);

    // 6. done.
    clock.at(start + 2 * MINUTE + 3_000);
    pass = await writesDuring(() => m.reconcile());
    assert.deepEqual(pass.writes, []);
    assert.equal(rotations.count, 3);
  });

  test("canWrite false: no Secret, no rotation step, no caBundle injection", async () => {
    const { manager: follower, rotations } = manager({ canWrite: () => false });
    const fresh = await writesDuring(() => follower.reconcile());
    assert.equal(fresh.result, undefined);
    assert.deepEqual(fresh.writes, []);
    await assert.rejects(readSecret(), (error: unknown) => statusCode(error) === 404);

    const clock = new ManualClock();
    const ca = await generateCa("seeded CA", 10 * HOUR);
    const oldLeaf = await leafFor(ca, HOUR);
    await seed({ ca, leaf: oldLeaf, bundle: [ca.cert], bundleChangedAt: clock.now() - HOUR, leafChangedAt: clock.now() - HOUR });
    const seededVersion = (await readSecret()).metadata?.resourceVersion;
    clock.at(45 * MINUTE);
    let leading = false;
    const { manager: m, rotations: rotated } = manager({ clock, canWrite: () => leading });
    const due = await writesDuring(() => m.reconcile());
    assert.deepEqual(due.writes, [], "a rotation is due, but this replica may not write");
    assert.ok(due.result && same(due.result.leaf.cert, oldLeaf.cert), "reports the Secret as it is");
    assert.equal((await readSecret()).metadata?.resourceVersion, seededVersion);
    assert.ok(
      (await caBundles()).every(({ bundle }) => bundle === ""),
      "no caBundle injected",
    );
    assert.equal(rotations.count + rotated.count, 0);

    // The same manager once it may write: the step really was due.
    leading = true;
    const led = await writesDuring(() => m.reconcile());
    assert.ok(led.writes.includes("update secrets 200"));
    assert.ok(!same((await secretState()).leaf.cert, oldLeaf.cert));
    assert.equal(rotated.count, 1);
  });

  test("a missing webhook configuration is logged, not thrown, and the other one still gets its caBundle", async () => {
    for (const missing of ["mutating", "validating"] as const) {
      await admission.deleteValidatingWebhookConfiguration({ name: CONFIG }).catch(() => undefined);
      await admission.deleteMutatingWebhookConfiguration({ name: CONFIG }).catch(() => undefined);
      installed = await installWebhooks(plane, webhookPort);
      if (missing === "mutating") await admission.deleteMutatingWebhookConfiguration({ name: CONFIG });
      else await admission.deleteValidatingWebhookConfiguration({ name: CONFIG });
      const { log, lines } = capturingLog();
      const { manager: m } = manager({ log });
      const state = await m.reconcile();
      assert.ok(state, `${missing} missing: reconcile still resolves with the state`);
      await eventually(
        () => lines.find((line) => line.msg === "webhook configuration not found: caBundle not injected"),
        2_000,
        `${missing}: the 404 is logged`,
      );
      const warning = lines.find((line) => line.msg === "webhook configuration not found: caBundle not injected");
      assert.equal(warning?.level, 40, "logged as a warning");
      assert.equal(warning?.webhookConfiguration, CONFIG);
      assert.equal(lines.filter((line) => Number(line.level) >= 50).length, 0, "no error logged");
      const present =
        missing === "mutating"
          ? installed.find((object) => object.kind === "ValidatingWebhookConfiguration")
          : installed.find((object) => object.kind === "MutatingWebhookConfiguration");
      const bundles = await caBundles();
      assert.equal(
        bundles.length,
        (present as { webhooks?: unknown[] }).webhooks?.length,
        `only the ${missing === "mutating" ? "validating" : "mutating"} configuration is there`,
      );
      for (const { webhook, bundle } of bundles) assert.deepEqual(pems(bundle), [state.ca.cert.trim()], webhook);
    }
  });

  test("a broken Secret is replaced as a whole", async () => {
    const ca = await generateCa("seeded CA", 10 * HOUR);
    const broken: V1Secret = stateToSecret(SECRET, OPERATOR_NAMESPACE, {
      ca,
      leaf: await leafFor(ca, 3 * HOUR),
      bundle: [ca.cert],
      bundleChangedAt: Date.now(),
      leafChangedAt: Date.now(),
    });
    delete broken.data!["tls.key"];
    await core.createNamespacedSecret({ namespace: OPERATOR_NAMESPACE, body: broken });
    const { manager: m } = manager();
    const { result: state, writes } = await writesDuring(() => m.reconcile());
    assert.ok(state);
    assert.ok(writes.includes("update secrets 200"), `replaced in place: ${writes.join(", ")}`);
    const stored = await secretState();
    assert.ok(!same(stored.ca.cert, ca.cert), "a new CA: the half-broken one is not trusted");
    assert.ok(new X509Certificate(stored.leaf.cert).checkPrivateKey(createPrivateKey(stored.leaf.key)));
    for (const { webhook, bundle } of await caBundles()) assert.deepEqual(pems(bundle), [stored.ca.cert.trim()], webhook);
  });

  test("a replica that loses leadership while the certificates are being generated writes nothing", async () => {
    // Leader for the first check only: the Lease is lost while the keys are generated.
    let checks = 0;
    const { manager: m } = manager({ canWrite: () => ++checks === 1 });
    const { writes } = await writesDuring(() => m.reconcile());
    assert.equal(checks >= 1, true, "the step was planned as leader");
    assert.deepEqual(writes, [], "canWrite() was already false when the Secret was written");
  });
});
