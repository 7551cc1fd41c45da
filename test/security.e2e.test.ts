// Attacks on the guard, through the real API server against the operator as a real process (two
// replicas, one with --webhook.binding.strict): the developer `jane`, with every verb on
// aadpodidentity.k8s.io in her namespaces, tries the ways around the webhooks that
// test/webhook.e2e.test.ts does not already cover; the webhook port is probed with plain HTTP, old TLS
// and an oversize body; and nothing secret shows up in /metrics or the debug logs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect, type TLSSocket } from "node:tls";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import type { AzureIdentity, AzureIdentityBinding } from "../src/kube/resources.js";
import { ADMISSION_BODY_LIMIT, VALIDATE_IDENTITY_PATH } from "../src/webhook/server.js";
import { FakeAzure, faults } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess } from "./support/process.js";
import { atLeast } from "../src/log.js";
import { installWebhooks, repointMutating, waitForCaBundles } from "./support/webhooks.js";
import { createTeamNamespace } from "./support/developers.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000f6";
const LOOKUP = "msi.azure.k8s.io";
const SHOP = "shop-88888888-0000-0000-0000-000000000008";
const OTHER = "other-99999999-0000-0000-0000-000000000009";
const DENIED = /denied the request: AzureIdentity objects are managed by azure-msi-operator/;
const LEASE = ["--lease.enable", "--lease.duration=4s", "--lease.renewdeadline=3s", "--lease.retryperiod=500ms"];

const labelsFor = (msi: string, resourcegroup = "rg-sec", subscription = SUB) => ({
  [`${LOOKUP}/name`]: msi,
  [`${LOOKUP}/resourcegroup`]: resourcegroup,
  [`${LOOKUP}/subscription`]: subscription,
});
const binding = (name: string, namespace: string, labels: Record<string, string>, azureIdentity?: string) => ({
  apiVersion: `${GROUP}/v1`,
  kind: "AzureIdentityBinding",
  metadata: { name, namespace, labels },
  spec: { selector: name, ...(azureIdentity ? { azureIdentity } : {}) },
});

describe("security: jane against the guard, the webhook port, secrets in logs and metrics", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let main: OperatorProcess;
  let strict: OperatorProcess | undefined;
  let custom: CustomObjectsApi;
  let mainPort: number;
  let webhookCa: string;

  const getIdentity = async (namespace: string, name: string) =>
    (await custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities", name })) as AzureIdentity;
  const getBinding = async (namespace: string, name: string) =>
    (await custom.getNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentitybindings", name })) as AzureIdentityBinding;
  const identitiesIn = async (namespace: string) =>
    ((await custom.listNamespacedCustomObject({ group: GROUP, version: "v1", namespace, plural: "azureidentities" })) as { items: AzureIdentity[] }).items;
  /** Resolves once the leader has run a sync (or a watch-triggered reconcile) that started after now. */
  const aSyncAfterNow = async () => {
    const now = Date.now();
    await main.waitForLog((line) => Number(line.receivedAt) > now + 200 && /^sync finished|namespace reconciled/.test(String(line.msg)), 30_000);
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    custom = plane.api("admin", CustomObjectsApi);
    for (const name of ["team-a", "team-b"]) await createTeamNamespace(plane, name);
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg-sec",
      name: "shop",
      clientId: "88888888-0000-0000-0000-000000000008",
      tags: { k8snamespace: "team-a" },
    });
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg-sec",
      name: "other",
      clientId: "99999999-0000-0000-0000-000000000009",
      tags: { k8snamespace: "team-b" },
    });
    // Error paths log too: the first listings meet a rejected token and a server error.
    fake.inject({ fault: faults.armError(401, "InvalidAuthenticationToken"), times: 2 });
    fake.inject({ fault: faults.status(500), times: 1 });
    mainPort = await reservePort();
    await installWebhooks(plane, mainPort);
    main = await OperatorProcess.start("security-main", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
      flags: [
        "run",
        "--log.debug",
        ...LEASE,
        "--sync.watch",
        "--azureidentity.binding.sync",
        "--sync.interval=5s",
        "--sync.locktime=0s",
        `--webhook.bind=127.0.0.1:${mainPort}`,
        "--webhook.tls.san=127.0.0.1",
      ],
    });
    await main.waitForLog((line) => line.msg === "became leader", 30_000);
    webhookCa = Buffer.from(await waitForCaBundles(plane, 30_000), "base64").toString();
    await eventually(() => main.ready(), 30_000, "main replica ready");
    await eventually(() => getIdentity("team-a", SHOP).catch(() => undefined), 40_000, "shop synced into team-a");
    await eventually(() => getIdentity("team-b", OTHER).catch(() => undefined), 20_000, "other synced into team-b");
  });
  after(async () => {
    await strict?.stop().catch(() => undefined);
    await main?.stop().catch(() => undefined);
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test(
    "jane's other ways to write AzureIdentities are denied: replace, server-side apply, copied labels, delete --all, deletecollection",
    { timeout: 90_000 },
    async () => {
      const shop = await getIdentity("team-a", SHOP);
      const version = shop.metadata?.resourceVersion;
      // A full update (PUT), not a patch: the stolen client ID in an otherwise identical object.
      const replaced = { ...shop, spec: { ...shop.spec, clientID: "99999999-0000-0000-0000-000000000009" } };
      const replace = await plane.kubectl("jane", ["replace", "-f", "-"], { stdin: JSON.stringify(replaced) });
      assert.notEqual(replace.code, 0);
      assert.match(replace.stderr, DENIED);
      assert.match(replace.stderr, /jane may not change them/);

      // Her own AzureIdentity dressed as the operator's: same labels (managed-by and lookup), same spec.
      for (const namespace of ["team-b", "team-a"]) {
        const copy = {
          apiVersion: `${GROUP}/v1`,
          kind: "AzureIdentity",
          metadata: { name: "shop-copy", namespace, labels: shop.metadata?.labels, annotations: shop.metadata?.annotations },
          spec: shop.spec,
        };
        for (const verb of [
          ["create", "-f", "-"],
          ["apply", "--server-side", "--field-manager=azure-msi-operator", "-f", "-"],
        ]) {
          const result = await plane.kubectl("jane", verb, { stdin: JSON.stringify(copy) });
          assert.notEqual(result.code, 0, `${verb.join(" ")} in ${namespace}`);
          assert.match(result.stderr, DENIED, `${verb.join(" ")} in ${namespace}`);
          assert.match(result.stderr, /jane may not create them/);
        }
      }

      const deleteAll = await plane.kubectl("jane", ["delete", "azureidentities", "--all", "-n", "team-a"]);
      assert.notEqual(deleteAll.code, 0);
      assert.match(deleteAll.stderr, DENIED);
      // DELETE on the collection: the API server asks the webhook about every item.
      const collection = await plane
        .api("jane", CustomObjectsApi)
        .deleteCollectionNamespacedCustomObject({ group: GROUP, version: "v1", namespace: "team-a", plural: "azureidentities" })
        .then(
          () => "deleted",
          (error: { body?: unknown; message?: string }) => String(typeof error.body === "string" ? error.body : JSON.stringify(error.body ?? error.message)),
        );
      assert.match(collection, /AzureIdentity objects are managed by azure-msi-operator: jane may not delete them/);

      assert.equal((await getIdentity("team-a", SHOP)).metadata?.resourceVersion, version, "the identity is untouched");
      assert.deepEqual(
        (await identitiesIn("team-a")).map((identity) => identity.metadata?.name),
        [SHOP],
      );
      assert.deepEqual(
        (await identitiesIn("team-b")).map((identity) => identity.metadata?.name),
        [OTHER],
      );
    },
  );

  test("a binding in team-a aimed at team-b's identity or MSI never gets it, from the webhook or the binding sync", { timeout: 90_000 }, async () => {
    // spec.azureIdentity names team-b's identity and the lookup labels name team-b's MSI.
    const cross = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("cross", "team-a", labelsFor("other"), OTHER)) });
    assert.equal(cross.code, 0, cross.stderr);
    assert.match(cross.stderr, /Warning: no AzureIdentity for managed identity other .* namespace "team-a"/);
    // Same, with the labels in another case (Azure names compare case-insensitively) and no spec.azureIdentity.
    const shouted = await plane.kubectl("jane", ["apply", "-f", "-"], {
      stdin: JSON.stringify(binding("shouted", "team-a", labelsFor("OTHER", "RG-SEC", SUB.toUpperCase()))),
    });
    assert.equal(shouted.code, 0, shouted.stderr);
    // team-a's MSI asked for from team-b.
    const reverse = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("reverse", "team-b", labelsFor("shop"))) });
    assert.equal(reverse.code, 0, reverse.stderr);
    // A binding that was rightly filled, relabelled to team-b's MSI.
    const own = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("own", "team-a", labelsFor("shop"))) });
    assert.equal(own.code, 0, own.stderr);
    assert.equal((await getBinding("team-a", "own")).spec?.azureIdentity, SHOP);
    const relabel = await plane.kubectl("jane", ["label", "azureidentitybinding", "own", "-n", "team-a", "--overwrite", `${LOOKUP}/name=other`]);
    assert.equal(relabel.code, 0, relabel.stderr);

    // The binding sync (leader, on watch events and every 5 s) has had its chance too.
    await aSyncAfterNow();
    await aSyncAfterNow();
    assert.equal((await getBinding("team-a", "cross")).spec?.azureIdentity, OTHER, "left as jane wrote it, nothing filled in");
    assert.equal((await getBinding("team-a", "shouted")).spec?.azureIdentity, undefined);
    assert.equal((await getBinding("team-b", "reverse")).spec?.azureIdentity, undefined);
    assert.equal((await getBinding("team-a", "own")).spec?.azureIdentity, SHOP, "still team-a's own identity");
    // What jane wrote resolves to nothing: aad-pod-identity looks the name up in the binding's namespace.
    assert.deepEqual(
      (await identitiesIn("team-a")).map((identity) => identity.metadata?.name),
      [SHOP],
    );
    assert.deepEqual(
      (await identitiesIn("team-b")).map((identity) => identity.metadata?.name),
      [OTHER],
    );
  });

  test("with --webhook.binding.strict: creating or relabelling a binding to another namespace's MSI is denied", { timeout: 120_000 }, async () => {
    strict = await OperatorProcess.start("security-strict", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE },
      flags: ["run", "--log.debug", ...LEASE, "--webhook.binding.strict", "--webhook.bind=127.0.0.1:0", "--webhook.tls.san=127.0.0.1"],
    });
    await eventually(() => strict!.ready(), 40_000, "strict replica ready");
    const strictPort = await strict.webhookPort();
    await repointMutating(plane, strictPort);
    try {
      const create = await eventually(
        async () => {
          const result = await plane.kubectl("jane", ["apply", "-f", "-"], {
            stdin: JSON.stringify(binding("cross-strict", "team-a", labelsFor("other"), OTHER)),
          });
          return result.code !== 0 ? result : undefined;
        },
        15_000,
        "strict replica answering",
      );
      assert.match(create.stderr, /denied the request: no AzureIdentity for managed identity other .* assigned to namespace "team-a"/);
      await assert.rejects(getBinding("team-a", "cross-strict"), "not stored");

      const own = await plane.kubectl("jane", ["apply", "-f", "-"], { stdin: JSON.stringify(binding("own-strict", "team-a", labelsFor("shop"))) });
      assert.equal(own.code, 0, own.stderr);
      const version = (await getBinding("team-a", "own-strict")).metadata?.resourceVersion;
      const relabel = await plane.kubectl("jane", ["label", "azureidentitybinding", "own-strict", "-n", "team-a", "--overwrite", `${LOOKUP}/name=other`]);
      assert.notEqual(relabel.code, 0);
      assert.match(relabel.stderr, /denied the request: no AzureIdentity for managed identity other/);
      const stored = await getBinding("team-a", "own-strict");
      assert.equal(stored.metadata?.resourceVersion, version);
      assert.equal(stored.metadata?.labels?.[`${LOOKUP}/name`], "shop");
      assert.equal(stored.spec?.azureIdentity, SHOP);
    } finally {
      await repointMutating(plane, mainPort);
    }
  });

  test("the webhook port refuses plain HTTP and TLS 1.0/1.1 (a client that can speak them gets a protocol_version alert)", { timeout: 30_000 }, async () => {
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest(
        { host: "127.0.0.1", port: mainPort, path: VALIDATE_IDENTITY_PATH, method: "POST", headers: { "content-type": "application/json" }, timeout: 10_000 },
        (res) => resolve(`answered ${res.statusCode}`),
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (error: NodeJS.ErrnoException) => resolve(`failed: ${error.code ?? error.message}`));
      req.end("{}");
    });
    assert.match(plain, /^failed: (ECONNRESET|EPIPE|HPE_INVALID_CONSTANT)|^failed: socket hang up/, plain);

    const handshake = (minVersion: "TLSv1" | "TLSv1.2", maxVersion: "TLSv1.1" | "TLSv1.2") =>
      new Promise<{ protocol: string | null } | { error: string }>((resolve) => {
        // SECLEVEL=0 so that this client (Node 20's OpenSSL 3) offers TLS 1.0/1.1 at all.
        const socket: TLSSocket = connect({ host: "127.0.0.1", port: mainPort, ca: webhookCa, minVersion, maxVersion, ciphers: "DEFAULT@SECLEVEL=0" }, () => {
          resolve({ protocol: socket.getProtocol() });
          socket.end();
        });
        socket.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
      });
    assert.deepEqual(await handshake("TLSv1.2", "TLSv1.2"), { protocol: "TLSv1.2" }, "the same client settings do work with TLS 1.2");
    assert.deepEqual(await handshake("TLSv1", "TLSv1.1"), { error: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION" }, "the server refuses TLS 1.0/1.1 with an alert");
  });

  test("an oversize body straight to the webhook port is a 413 with a message, and the process keeps serving", { timeout: 60_000 }, async () => {
    // A raw TLS socket. Bytes the server never reads make its close a TCP reset, which can destroy
    // its answer before the client reads it; so this client sends no more than the server needs to
    // decide: headers alone when they declare the length, limit + 1 bytes when chunked.
    const send = (declaredLength: number | "chunked") =>
      new Promise<{ status: number; body: string }>((resolve) => {
        const socket = connect({ host: "127.0.0.1", port: mainPort, ca: webhookCa }, () => {
          const framing = declaredLength === "chunked" ? "Transfer-Encoding: chunked" : `Content-Length: ${declaredLength}`;
          socket.write(`POST ${VALIDATE_IDENTITY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`);
          if (declaredLength !== "chunked") return;
          let sent = 0;
          const more = () => {
            while (sent <= ADMISSION_BODY_LIMIT && !socket.destroyed) {
              const piece = Buffer.alloc(Math.min(64 * 1024, ADMISSION_BODY_LIMIT + 1 - sent), sent === 0 ? "[" : " ");
              sent += piece.length;
              if (!socket.write(Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from("\r\n")])))
                return void socket.once("drain", more);
            }
          };
          more();
        });
        let received = "";
        socket.on("data", (chunk: Buffer) => (received += chunk.toString()));
        socket.on("error", () => undefined);
        socket.on("close", () => {
          const [head = "", rest = ""] = received.split("\r\n\r\n", 2);
          resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), body: rest });
        });
      });
    // One after the other: together, the chunked ones (each charged the whole body limit) would meet the
    // in-flight budget and be answered 429 unread (test/flood.e2e.test.ts), which is not what this checks.
    const answers: { status: number; body: string }[] = [];
    for (const declared of [ADMISSION_BODY_LIMIT + 1, 16 * 1024 * 1024, 1024 * 1024 * 1024, "chunked", "chunked"] as const) answers.push(await send(declared));
    for (const answer of answers) {
      assert.equal(answer.status, 413, answer.body);
      assert.match((JSON.parse(answer.body) as { message: string }).message, /larger than the 3584 KiB this webhook accepts/);
    }
    assert.equal(main.child.exitCode, null, "still running");
    assert.ok(await main.ready());
    const denied = await plane.kubectl("jane", ["apply", "--dry-run=server", "-f", "-"], {
      stdin: JSON.stringify({
        apiVersion: `${GROUP}/v1`,
        kind: "AzureIdentity",
        metadata: { name: "after-413", namespace: "team-a" },
        spec: { type: 0, resourceID: "/x", clientID: "y" },
      }),
    });
    assert.match(denied.stderr, DENIED, "admission still answered by this process");
  });

  test("no secret or token in /metrics or in the debug logs of either replica", { timeout: 30_000 }, async (t) => {
    const secretData =
      (await plane.api("admin", CoreV1Api).readNamespacedSecret({ name: "azure-msi-operator-webhook-tls", namespace: OPERATOR_NAMESPACE })).data ?? {};
    const saToken = plane.kubeConfig("operator").getCurrentUser()?.token ?? "";
    const tokens = fake.entra.issuedTokens();
    assert.ok(saToken.length > 100, "the operator's kubeconfig holds a service-account token");
    assert.ok(tokens.length > 0, "the fake issued bearer tokens to the operator");
    const secrets: [string, string][] = [
      ["Azure client secret", fake.credentialEnv().AZURE_CLIENT_SECRET!],
      ["service-account token", saToken],
      ["service-account token signature", saToken.split(".")[2]!],
    ];
    for (const token of tokens) secrets.push(["Azure bearer token", token], ["Azure bearer token signature", token.split(".")[2]!]);
    for (const key of Object.keys(secretData).filter((name) => name.endsWith(".key"))) {
      const pem = Buffer.from(secretData[key]!, "base64").toString();
      const body = pem.split("\n").filter((line) => line && !line.startsWith("-----"));
      assert.ok(body.length > 5, `${key} is a PEM key`);
      // Any one line of the key, or its Secret (base64 of the PEM) form.
      for (const line of body) secrets.push([`${key} (PEM line)`, line]);
      secrets.push([`${key} (Secret data)`, secretData[key]!.slice(0, 64)]);
    }

    const processes = [main, strict].filter((proc): proc is OperatorProcess => proc !== undefined);
    const exposed: string[] = [];
    for (const proc of processes) {
      const metrics = await proc.get("/metrics");
      assert.equal(metrics.status, 200);
      exposed.push(metrics.body, ...proc.logs.map((line) => JSON.stringify(line)), ...proc.stderr);
    }
    const haystack = exposed.join("\n");
    // The grep is only worth something if the logs hold the interesting paths: errors, denials, debug level.
    const problems = main.logs.filter((line) => atLeast(line, "warn"));
    assert.ok(
      problems.some((line) => /InvalidAuthenticationToken|access token|500/i.test(JSON.stringify(line))),
      `the injected Azure errors were logged: ${JSON.stringify(problems).slice(0, 3000)}`,
    );
    assert.ok(
      main.logs.some((line) => line.msg === "admission denied"),
      "denials were logged",
    );
    assert.ok(
      processes.every((proc) => proc.logs.some((line) => line.msg === "starting")),
      "both replicas logged",
    );
    t.diagnostic(
      `${secrets.length} secret values (${tokens.length} bearer tokens) searched in ${processes.reduce((sum, proc) => sum + proc.logs.length, 0)} log lines, stderr and /metrics of ${processes.length} processes`,
    );
    const leaks = secrets.filter(([, value]) => value.length >= 16 && haystack.includes(value)).map(([what]) => what);
    assert.deepEqual([...new Set(leaks)], []);
    assert.doesNotMatch(haystack, /PRIVATE KEY/);
    assert.doesNotMatch(haystack, /eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+/, "no JWT at all");
    assert.doesNotMatch(haystack, /Bearer\s+[\w-]{16,}/i);
  });
});
