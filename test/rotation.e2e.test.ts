// Certificate rotation (serving certificate and CA) while admission requests flow through the real
// API server: not one may fail.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { AdmissionregistrationV1Api, CoreV1Api } from "@kubernetes/client-node";
import pino from "pino";
import { CertManager } from "../certs/manager.js";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { applyOperatorRbac, eventually, startOperator, type RunningOperator } from "./support/operator.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";
import { createTeamNamespace } from "./support/developers.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000d4";
const LOAD_MS = 48_000;

describe("certificate rotation under load", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: RunningOperator;

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    await createTeamNamespace(plane, "team-r");
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "rot",
      clientId: "66666666-0000-0000-0000-000000000006",
      tags: { k8snamespace: "team-r" },
    });
    const port = await reservePort();
    await installWebhooks(plane, port);
    operator = await startOperator(
      plane,
      fake.credentialEnv(),
      [
        `--webhook.bind=127.0.0.1:${port}`,
        "--webhook.tls.san=127.0.0.1",
        "--webhook.cert.validity=30s",
        "--webhook.ca.validity=60s",
        "--webhook.cert.rotate=1/3",
      ],
      { certCheckIntervalMs: 500 },
    );
    await waitForCaBundles(plane);
    await eventually(() => operator.app.notReady() === undefined || undefined, 20_000, "ready");
    await eventually(() => operator.logs.find((line) => line.msg === "sync finished"), 20_000, "identity synced");
  });
  after(async () => {
    await operator?.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("zero failed admissions while the serving certificate and the CA rotate", async () => {
    const binding = JSON.stringify({
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentityBinding",
      metadata: {
        name: "rot",
        namespace: "team-r",
        labels: { "msi.azure.k8s.io/name": "rot", "msi.azure.k8s.io/resourcegroup": "rg", "msi.azure.k8s.io/subscription": SUB },
      },
      spec: { selector: "rot" },
    });
    const identity = JSON.stringify({
      apiVersion: `${GROUP}/v1`,
      kind: "AzureIdentity",
      metadata: { name: "forged", namespace: "team-r" },
      spec: { type: 0, resourceID: "/x", clientID: "y" },
    });
    const failures: string[] = [];
    let requests = 0;
    const deadline = Date.now() + LOAD_MS;
    const worker = async () => {
      while (Date.now() < deadline) {
        // Mutating (failurePolicy Ignore would hide an outage, so the result itself is checked).
        const mutated = await plane.kubectl("jane", ["apply", "--dry-run=server", "-o", "jsonpath={.spec.azureIdentity}", "-f", "-"], { stdin: binding });
        requests++;
        if (mutated.code !== 0 || mutated.stdout !== "rot-66666666-0000-0000-0000-000000000006")
          failures.push(`mutate: ${mutated.code} ${mutated.stdout} ${mutated.stderr.trim()}`);
        // Validating (failurePolicy Fail): the answer must be the webhook's own denial, not a TLS error.
        const denied = await plane.kubectl("jane", ["apply", "--dry-run=server", "-f", "-"], { stdin: identity });
        requests++;
        if (!/denied the request: AzureIdentity objects are managed by azure-msi-operator/.test(denied.stderr))
          failures.push(`validate: ${denied.code} ${denied.stderr.trim()}`);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    const steps = operator.logs.filter((line) => line.msg === "webhook certificates updated").map((line) => String(line.step));
    assert.deepEqual(failures, [], `${failures.length} of ${requests} admissions failed`);
    assert.ok(requests > 50, `only ${requests} requests`);
    assert.ok(steps.filter((step) => step === "rotate-leaf" || step === "promote-next-ca").length >= 2, `steps: ${steps.join(", ")}`);
    assert.ok(
      steps.includes("stage-next-ca") && steps.includes("promote-next-ca") && steps.includes("trim-bundle"),
      `a full CA rotation happened: ${steps.join(", ")}`,
    );
  });

  test("two leaders racing to create the certificate Secret end with one Secret they both use", async () => {
    const core = plane.api("admin", CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "race" } } });
    const manager = () =>
      new CertManager(
        {
          namespace: "race",
          secretName: "webhook-tls",
          serviceName: "svc",
          extraSans: ["127.0.0.1"],
          validatingWebhookConfiguration: "none",
          mutatingWebhookConfiguration: "none",
          policy: { caValidityMs: 3_600_000, leafValidityMs: 1_800_000, rotateRemainingFraction: 1 / 3, propagationMs: 1_000 },
        },
        { core, admission: plane.api("admin", AdmissionregistrationV1Api), log: pino({ level: "silent" }), canWrite: () => true },
      );
    const [first, second] = await Promise.all([manager().reconcile(), manager().reconcile()]);
    const secrets = await core.listNamespacedSecret({ namespace: "race" });
    assert.equal(secrets.items.length, 1);
    assert.ok(first && second);
    assert.equal(first.leaf.cert, second.leaf.cert, "the loser adopted the winner's certificate");
    assert.equal(first.ca.cert, second.ca.cert);
  });
});
