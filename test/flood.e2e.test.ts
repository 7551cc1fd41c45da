// Issue 23's proof against the real API server: the operator as a real process (the shipped bundle,
// the shipped Deployment's env, the image's NODE_OPTIONS and GLIBC_TUNABLES) while a hostile
// in-cluster client floods its webhook port on 127.0.0.1. Flood A: 20,000 reviews, each naming a
// different unknown resource. Flood B: 48 connections posting 3.3 MiB reviews back to back for 20 s.
// Throughout, the operator's memory is read from /proc and jane's and the admin's writes go through
// the API server, which calls the same webhook: jane must be refused by it, the admin let through.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { Agent } from "node:https";
import { CustomObjectsApi } from "@kubernetes/client-node";
import { mapLimit, percentile } from "../bench/common.js";
import { VALIDATE_EXCEPTION_PATH, WEBHOOK_PATHS } from "../src/webhook/server.js";
import { FakeAzure } from "./azure/fake.js";
import { ControlPlane } from "./controlplane/controlplane.js";
import { reservePort } from "./controlplane/ports.js";
import { createTeamNamespace } from "./support/developers.js";
import { parseDockerfile } from "./support/dockerfile.js";
import { bodyFlood, memorySampler, paddedReview, postReview, seriesCount, unknownResourceReview, type BodyFloodResult } from "./support/flood.js";
import { shippedEnv } from "./support/manifests.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess } from "./support/process.js";
import { installWebhooks, waitForCaBundles } from "./support/webhooks.js";

const GROUP = "aadpodidentity.k8s.io";
const SUB = "00000000-0000-0000-0000-0000000000f1";
const NAMESPACE = "team-a";
/** The shipped memory limit is 256 MiB; the issue asks for margin. */
const PEAK_RSS_BOUND_MIB = 200;
const SERIES_GROWTH_BOUND = 50;
const FLOOD_A_REVIEWS = 20_000;
const FLOOD_B_CONNECTIONS = 48;
const FLOOD_B_BODY_BYTES = Math.round(3.3 * 1024 * 1024);
const FLOOD_B_MS = 20_000;
/** The validating webhook the API server calls for AzureIdentity writes (manifests/base/webhooks.yaml). */
const IDENTITY_WEBHOOK = "azureidentities.azure-msi-operator.aadpodidentity.k8s.io";
const JANE_REFUSED = /azure-msi-operator.*jane may not create them/;

const identity = (name: string) => ({
  apiVersion: `${GROUP}/v1`,
  kind: "AzureIdentity",
  metadata: { name, namespace: NAMESPACE },
  spec: { type: 0, resourceID: `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/${name}`, clientID: name },
});

/** The image's runtime settings (the last stage's ENV), which shape how far memory grows. */
async function imageEnv(): Promise<Record<string, string>> {
  const stages = parseDockerfile(await readFile(new URL("../Dockerfile", import.meta.url), "utf8"));
  const env: Record<string, string> = {};
  for (const { keyword, args } of stages.at(-1)?.instructions ?? []) {
    const match = keyword === "ENV" ? /^(NODE_OPTIONS|GLIBC_TUNABLES)=(\S+)$/.exec(args) : null;
    if (match) env[match[1]!] = match[2]!;
  }
  if (!env.NODE_OPTIONS || !env.GLIBC_TUNABLES) throw new Error(`the Dockerfile's last stage sets no NODE_OPTIONS or GLIBC_TUNABLES: ${JSON.stringify(env)}`);
  return env;
}

/** The API server's own count of its calls to one webhook, by HTTP code, and their total latency. */
function webhookCalls(exposition: string, webhook: string): { byCode: Record<string, number>; count: number; sumS: number } {
  const byCode: Record<string, number> = {};
  let count = 0;
  let sumS = 0;
  for (const line of exposition.split("\n")) {
    if (!line.includes(`name="${webhook}"`)) continue;
    const value = Number(line.split(" ").pop());
    if (line.startsWith("apiserver_admission_webhook_request_total{")) {
      const code = /code="(\d+)"/.exec(line)?.[1] ?? "?";
      byCode[code] = (byCode[code] ?? 0) + value;
    } else if (line.startsWith("apiserver_admission_webhook_admission_duration_seconds_count{")) count += value;
    else if (line.startsWith("apiserver_admission_webhook_admission_duration_seconds_sum{")) sumS += value;
  }
  return { byCode, count, sumS };
}

interface Probe {
  who: "jane" | "admin";
  ms: number;
  outcome: "refused by the webhook" | "allowed" | "other";
  detail: string;
}

describe("flood: the webhook under hostile in-cluster clients, on the real API server", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let operator: OperatorProcess | undefined;
  let port: number;
  let ca: string;

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    await createTeamNamespace(plane, NAMESPACE);
    fake.model.addIdentity({
      subscriptionId: SUB,
      resourceGroup: "rg",
      name: "shop",
      clientId: "11111111-0000-0000-0000-0000000000f1",
      tags: { k8snamespace: NAMESPACE },
    });
    port = await reservePort();
    await installWebhooks(plane, port);
    operator = await OperatorProcess.start("azure-msi-operator-flood", {
      kubeconfig: plane.kubeconfigPath("operator"),
      env: { ...(await shippedEnv("azure-msi-operator-flood")), ...(await imageEnv()), ...fake.credentialEnv() },
      flags: [`--webhook.bind=127.0.0.1:${port}`, "--webhook.tls.san=127.0.0.1"],
    });
    ca = Buffer.from(await waitForCaBundles(plane, 40_000), "base64").toString();
    await eventually(() => operator!.ready(), 40_000, "operator ready");
    await operator.waitForLog((line) => line.msg === "sync finished", 40_000);
  });
  after(async () => {
    await operator?.stop();
    await Promise.all([plane?.stop(), fake?.close()]);
  });

  test("both floods: peak RSS, /metrics series, and the API server's admissions answered throughout", { timeout: 400_000 }, async (t) => {
    const op = operator!;
    const scrape = async () => (await op.get("/metrics")).body;
    const apiserverMetrics = () => plane.kubectlOrThrow("admin", ["get", "--raw", "/metrics"]);

    // The API server's own admissions, one jane and one admin create after the other for as long as the floods last.
    const apis = { jane: plane.api("jane", CustomObjectsApi), admin: plane.api("admin", CustomObjectsApi) };
    const probes: Probe[] = [];
    let flooding = true;
    const probe = async (who: Probe["who"], name: string): Promise<Probe> => {
      const started = performance.now();
      const outcome = await apis[who]
        .createNamespacedCustomObject({ group: GROUP, version: "v1", namespace: NAMESPACE, plural: "azureidentities", body: identity(name) })
        .then(
          () => ({ outcome: "allowed" as const, detail: "" }),
          (error: { body?: unknown; message?: string }) => {
            const detail = typeof error.body === "string" ? error.body : JSON.stringify(error.body ?? error.message);
            return { outcome: JANE_REFUSED.test(detail) ? ("refused by the webhook" as const) : ("other" as const), detail };
          },
        );
      return { who, ms: performance.now() - started, ...outcome };
    };
    const probing = (async () => {
      for (let index = 0; flooding; index++) {
        probes.push(await probe("jane", `jane-${index}`));
        probes.push(await probe("admin", `admin-${index}`));
      }
    })();
    // kubectl as the developer and admin run it, once in each flood.
    const kubectlPair = async (label: string) => {
      const jane = await plane.kubectl("jane", ["create", "-f", "-"], { stdin: JSON.stringify(identity(`jane-kubectl-${label}`)) });
      const admin = await plane.kubectl("admin", ["create", "-f", "-"], { stdin: JSON.stringify(identity(`admin-kubectl-${label}`)) });
      return { jane, admin };
    };

    const apiserverBefore = webhookCalls(await apiserverMetrics(), IDENTITY_WEBHOOK);
    const seriesBefore = seriesCount(await scrape());
    const refusedBefore = /azuremsi_webhook_refused_total\{reason="inflight"\} (\d+)/.exec(await scrape())?.[1] ?? "0";
    const memory = memorySampler(op.child.pid!);
    const memoryStarted = Date.now();
    const startRss = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${op.child.pid!}/status`, "utf8"))?.[1]) / 1024;

    // Flood A.
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const floodAStatuses: Record<string, number> = {};
    const floodAStarted = Date.now();
    const kubectlA = kubectlPair("a");
    await mapLimit(
      Array.from({ length: FLOOD_A_REVIEWS }, (_, index) => index),
      16,
      async (index) => {
        const reply = await postReview(port, ca, WEBHOOK_PATHS[index % WEBHOOK_PATHS.length]!, JSON.stringify(unknownResourceReview(index)), agent).catch(
          (error: Error) => ({ status: error.message }),
        );
        floodAStatuses[reply.status] = (floodAStatuses[reply.status] ?? 0) + 1;
      },
    );
    agent.destroy();
    const floodAMs = Date.now() - floodAStarted;
    const floodBFrom = Date.now() - memoryStarted;
    const seriesAfterA = seriesCount(await scrape());

    // Flood B.
    const kubectlB = (async () => {
      await new Promise((resolve) => setTimeout(resolve, FLOOD_B_MS / 2));
      return kubectlPair("b");
    })();
    const floodB: BodyFloodResult = await bodyFlood({
      port,
      ca,
      path: VALIDATE_EXCEPTION_PATH,
      body: Buffer.from(paddedReview(FLOOD_B_BODY_BYTES, "flood-b", "many")),
      connections: FLOOD_B_CONNECTIONS,
      durationMs: FLOOD_B_MS,
    });
    flooding = false;
    await probing;
    const { samples, peakRssMiB, hwmMiB } = await memory.stop();
    const afterText = await scrape();
    const seriesAfter = seriesCount(afterText);
    const refused = Number(/azuremsi_webhook_refused_total\{reason="inflight"\} (\d+)/.exec(afterText)?.[1] ?? 0) - Number(refusedBefore);
    const apiserverAfter = webhookCalls(await apiserverMetrics(), IDENTITY_WEBHOOK);
    const [kubectlDuringA, kubectlDuringB] = [await kubectlA, await kubectlB];

    const calls = Object.fromEntries(
      Object.entries(apiserverAfter.byCode)
        .map(([code, value]) => [code, value - (apiserverBefore.byCode[code] ?? 0)] as const)
        .filter(([, value]) => value > 0),
    );
    const callCount = apiserverAfter.count - apiserverBefore.count;
    const meanCallMs = ((apiserverAfter.sumS - apiserverBefore.sumS) / Math.max(1, callCount)) * 1000;
    const latencies = (who: Probe["who"]) => probes.filter((p) => p.who === who).map((p) => p.ms);
    const answered = probes.filter((p) => (p.who === "jane" ? p.outcome === "refused by the webhook" : p.outcome === "allowed")).length;
    const mib = (value: number) => Math.round(value * 10) / 10;
    const figures = {
      rssMiB: {
        start: mib(startRss),
        peakFloodA: mib(Math.max(...samples.filter((sample) => sample.atMs < floodBFrom).map((sample) => sample.rssMiB))),
        peakFloodB: mib(Math.max(...samples.filter((sample) => sample.atMs >= floodBFrom).map((sample) => sample.rssMiB))),
        peakSampled: mib(peakRssMiB),
        vmHWM: mib(hwmMiB),
        samples: samples.length,
      },
      series: { before: seriesBefore, afterFloodA: seriesAfterA, afterFloodB: seriesAfter },
      floodA: { reviews: FLOOD_A_REVIEWS, ms: floodAMs, statuses: floodAStatuses },
      floodB: { ...floodB, refusedUnread429: refused },
      apiserverAdmissions: {
        probes: probes.length,
        answeredByWebhook: answered,
        janeMs: { p50: mib(percentile(latencies("jane"), 50)), p99: mib(percentile(latencies("jane"), 99)), max: mib(Math.max(...latencies("jane"))) },
        adminMs: { p50: mib(percentile(latencies("admin"), 50)), p99: mib(percentile(latencies("admin"), 99)), max: mib(Math.max(...latencies("admin"))) },
        apiserverWebhookCalls: { byCode: calls, count: callCount, meanMs: mib(meanCallMs) },
      },
    };
    t.diagnostic(JSON.stringify(figures));
    for (const p of probes.filter((p) => p.outcome === "other")) t.diagnostic(`${p.who}: ${p.detail.slice(0, 300)}`);

    assert.ok(hwmMiB <= PEAK_RSS_BOUND_MIB, `peak RSS (VmHWM) ${mib(hwmMiB)} MiB`);
    assert.ok(seriesAfter - seriesBefore <= SERIES_GROWTH_BOUND, `series ${seriesBefore} -> ${seriesAfter}`);
    assert.deepEqual(floodAStatuses, { 200: FLOOD_A_REVIEWS }, "every review of flood A answered");
    assert.ok(refused > 0, "flood B met the in-flight budget");
    assert.ok((floodB.statuses[200] ?? 0) > 0, "flood B's admitted bodies were answered");
    // jane refused by the webhook itself (its message), the admin let through, in each flood.
    for (const { jane, admin } of [kubectlDuringA, kubectlDuringB]) {
      assert.notEqual(jane.code, 0);
      assert.match(jane.stderr, JANE_REFUSED);
      assert.equal(admin.code, 0, admin.stderr);
    }
    assert.ok(probes.length >= 10, `${probes.length} probes`);
    assert.equal(answered, probes.length, "every admission the API server asked for was answered by the webhook");
    // The API server labels a call by the answer's code: 200 allowed, 403 the webhook's denial; anything else (a 429 it gave up on, a timeout) failed.
    // The admin's creates skip the webhook (matchConditions: whom the guard allows anyway), so jane's denials are the calls.
    assert.deepEqual(
      Object.keys(calls).filter((code) => code !== "200" && code !== "403"),
      [],
      "the API server's calls to the webhook all ended in an answer",
    );
    assert.ok((calls["403"] ?? 0) > 0, "jane's creates reached the webhook and were denied there");
    // The latency histogram and the counter by code are separate series: read at one instant, a call
    // may be in one and not yet in the other.
    assert.ok(Math.abs((calls["200"] ?? 0) + (calls["403"] ?? 0) - callCount) <= 1, `${JSON.stringify(calls)} of ${callCount} calls`);
  });
});
