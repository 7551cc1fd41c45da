// The SIGTERM matrix (issue 22): the operator as a real process (the shipped bundle) against the real
// API server and the Azure fake, SIGTERMed in each state where something could hang, must exit 0
// within --shutdown.delay + 10 s, by ending what runs, not by a backstop (main's backstop exits 1).
// Also: a server that cannot listen ends the process non-zero (issue 22 item 10).
//
// Against f48d249: "before any certificate loaded" never exits (item 4: the webhook's stop() waited for
// a certificate), "API server black-holed" hangs in the elector's try and the release (item 6), and
// "webhook port in use" never exits (item 10: the failure was only logged).
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCa, issueCert } from "../certs/pki.js";
import { SYNC_NOW_ANNOTATION } from "../src/syncer/sync-now.js";
import { FakeAzure, faults, type InjectedFault } from "./azure/fake.js";
import { ControlPlane, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from "./controlplane/controlplane.js";
import { createTeamNamespace } from "./support/developers.js";
import { applyOperatorRbac, eventually } from "./support/operator.js";
import { OperatorProcess } from "./support/process.js";
import { TcpProxy } from "./support/tcp-proxy.js";

const SUB = "00000000-0000-0000-0000-00000000051a";
const LEASE = "azure-msi-operator-leader";
const DELAY_MS = 2_000;
/** The promise: SIGTERM ends the process within --shutdown.delay plus this. */
const GRACE_MS = 10_000;
const FLAGS = [
  "run",
  "--lease.enable",
  "--lease.duration=4s",
  "--lease.renewdeadline=3s",
  "--lease.retryperiod=500ms",
  `--shutdown.delay=${DELAY_MS / 1000}s`,
  "--sync.interval=1h",
  "--sync.locktime=0s",
  "--sync.request.interval=0s",
  "--webhook.bind=127.0.0.1:0",
  "--webhook.tls.san=127.0.0.1",
];
const LISTING = /\/userAssignedIdentities(\?|$)/;

const logged = (msg: string) => (line: Record<string, unknown>) => line.msg === msg;

describe("SIGTERM matrix: exit 0 within --shutdown.delay + 10 s in every state", () => {
  let plane: ControlPlane;
  let fake: FakeAzure;
  let proxy: TcpProxy;
  let env: Record<string, string>;
  let direct: string;
  let viaProxy: string;
  let dir: string;
  let certFile: string;
  let keyFile: string;
  const running: OperatorProcess[] = [];
  const injected: InjectedFault[] = [];
  const matrix: { state: string; code: number | null; signal: string | null; elapsedMs: number }[] = [];

  const start = async (name: string, options: { kubeconfig?: string; flags?: string[] } = {}) => {
    const proc = await OperatorProcess.start(name, { kubeconfig: options.kubeconfig ?? direct, env, flags: [...FLAGS, ...(options.flags ?? [])] });
    running.push(proc);
    return proc;
  };
  const inject = (fault: Parameters<FakeAzure["inject"]>[0]) => {
    const rule = fake.inject(fault);
    injected.push(rule);
    return rule;
  };
  /** A request of this process's run that the fake is holding (its `at` is after `since`). */
  const heldListing = (since: number, fault: "delay" | "hang") =>
    eventually(
      () => fake.requests.some((request) => request.at >= since && request.fault === fault && LISTING.test(request.url)) || undefined,
      30_000,
      `a ${fault} listing`,
    );

  /** SIGTERM, then the exit: code, signal and time, recorded and asserted. */
  const sigterm = async (t: TestContext, state: string, proc: OperatorProcess) => {
    const sent = performance.now();
    proc.kill("SIGTERM");
    // The helper's own SIGKILL comes only well past the promise; a process that needs it fails here.
    const exit = await Promise.race([
      proc.exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${state}: no exit within ${DELAY_MS + GRACE_MS + 5_000} ms of SIGTERM`)), DELAY_MS + GRACE_MS + 5_000).unref(),
      ),
    ]);
    const elapsedMs = Math.round(performance.now() - sent);
    matrix.push({ state, code: exit.code, signal: exit.signal, elapsedMs });
    t.diagnostic(`${state}: exit code ${exit.code}, ${elapsedMs} ms after SIGTERM (bound ${DELAY_MS + GRACE_MS} ms)`);
    const tail = proc.logs
      .slice(-6)
      .map((line) => `${String(line.msg)}${line.err ? ` (${JSON.stringify(line.err)})` : ""}`)
      .join(" | ");
    assert.equal(exit.code, 0, `${state}: exit code (last log lines: ${tail})`);
    assert.ok(elapsedMs <= DELAY_MS + GRACE_MS, `${state}: exited ${elapsedMs} ms after SIGTERM`);
    assert.ok(!proc.logs.some(logged("shutdown did not finish in time: exiting anyway")), `${state}: no backstop`);
    assert.ok(proc.logs.some(logged("stopped")), `${state}: the shutdown ran to its end`);
  };

  before(async () => {
    [plane, fake] = await Promise.all([ControlPlane.start(), FakeAzure.start()]);
    await applyOperatorRbac(plane);
    await createTeamNamespace(plane, "team-s");
    fake.model.addSubscription({ subscriptionId: SUB });
    fake.model.addIdentity({ subscriptionId: SUB, resourceGroup: "rg", name: "sigterm", tags: { k8snamespace: "team-s" } });
    env = { ...fake.credentialEnv(), INSTANCE_NAMESPACE: OPERATOR_NAMESPACE };
    const apiPort = Number(new URL(plane.server).port);
    proxy = await TcpProxy.start(() => apiPort);
    direct = plane.kubeconfigPath("operator");
    viaProxy = await plane.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, `https://127.0.0.1:${proxy.port}`);
    dir = await mkdtemp(join(tmpdir(), "amo-sigterm-"));
    certFile = join(dir, "tls.crt");
    keyFile = join(dir, "tls.key");
    const ca = await generateCa("sigterm matrix", 3_600_000);
    const leaf = await issueCert(ca, { commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"], usage: "server", validityMs: 3_600_000 });
    await writeFile(certFile, leaf.cert);
    await writeFile(keyFile, leaf.key);
  });
  after(async (t) => {
    for (const rule of injected) rule.cancel();
    try {
      // Every case ended its process; one still running is a failure of this file.
      for (const proc of running) await proc.stop();
    } finally {
      if (matrix.length > 0) {
        const rows = matrix.map(({ state, code, signal, elapsedMs }) => `| ${state} | ${code ?? signal} | ${(elapsedMs / 1000).toFixed(1)} s |`);
        t.diagnostic(["| state | exit code | SIGTERM to exit |", "| --- | --- | --- |", ...rows].join("\n"));
      }
      await proxy?.close();
      await Promise.all([plane?.stop(), fake?.close()]);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("before any serving certificate loaded (issue 22 item 4)", async (t) => {
    // Bring-your-own certificate files that do not exist (yet): the webhook waits for them.
    const proc = await start("sigterm-no-cert", { flags: [`--webhook.tls.cert=${join(dir, "absent.crt")}`, `--webhook.tls.key=${join(dir, "absent.key")}`] });
    await proc.waitForLog(logged("became leader"), 30_000);
    await proc.waitForLog(logged("sync finished"), 30_000);
    const readyz = await proc.get("/readyz");
    assert.equal(readyz.status, 503);
    assert.match(readyz.body, /webhook certificate not loaded/);
    await sigterm(t, "before any certificate loaded", proc);
  });

  test("during an Azure listing (the listing answers only after minutes)", async (t) => {
    const since = Date.now();
    const slow = inject({ match: LISTING, times: Infinity, fault: faults.delay(300_000) });
    const proc = await start("sigterm-listing");
    try {
      await proc.waitForLog(logged("became leader"), 30_000);
      await heldListing(since, "delay");
      await sigterm(t, "during an Azure listing", proc);
    } finally {
      slow.cancel();
    }
  });

  // Issue 22 item 7: the term's end aborts the sync now's fresh listing (before, SyncNowDuty.stop()
  // waited for the whole sync and the backstop ended the process with exit code 1).
  test("during a sync now (its fresh listing answers only after minutes)", async (t) => {
    const proc = await start("sigterm-sync-now");
    await proc.waitForLog(logged("sync finished"), 30_000);
    const since = Date.now();
    const slow = inject({ match: LISTING, times: Infinity, fault: faults.delay(300_000) });
    try {
      const annotated = await plane.kubectl("admin", [
        "-n",
        OPERATOR_NAMESPACE,
        "annotate",
        "--overwrite",
        "lease",
        LEASE,
        `${SYNC_NOW_ANNOTATION}=sigterm-${since}`,
      ]);
      assert.equal(annotated.code, 0, annotated.stderr);
      await proc.waitForLog(logged("sync now requested: full sync with a fresh Azure listing"), 30_000);
      await heldListing(since, "delay");
      await sigterm(t, "during a sync now", proc);
    } finally {
      slow.cancel();
    }
  });

  test("with Azure black-holed (no request ever answered, token requests included)", async (t) => {
    const since = Date.now();
    const hole = inject({ match: () => true, times: Infinity, fault: faults.hang() });
    const proc = await start("sigterm-azure-hole");
    try {
      await proc.waitForLog(logged("became leader"), 30_000);
      await eventually(() => fake.requests.some((request) => request.at >= since && request.fault === "hang") || undefined, 30_000, "a held Azure request");
      await sigterm(t, "Azure black-holed", proc);
    } finally {
      hole.cancel();
    }
  });

  // Last among the Lease holders: the Lease it cannot release holds the next leader back for its duration.
  test("with the API server black-holed (packets dropped, not reset) (issue 22 item 6)", async (t) => {
    proxy.heal();
    const proc = await start("sigterm-api-hole", { kubeconfig: viaProxy });
    try {
      await proc.waitForLog(logged("sync finished"), 30_000);
      await eventually(async () => (await proc.ready()) || undefined, 30_000, "ready");
      proxy.blackhole();
      await sigterm(t, "API server black-holed", proc);
    } finally {
      proxy.heal();
    }
  });

  test("with the API server black-holed from the start (start-up still waiting for its first answer)", async (t) => {
    proxy.blackhole();
    const proc = await start("sigterm-api-hole-start", { kubeconfig: viaProxy });
    try {
      // The ops server is up (the first duty); the first request to the API server gets no answer.
      await eventually(async () => (await proc.get("/healthz").catch(() => ({ status: 0 }))).status === 200 || undefined, 30_000, "/healthz");
      assert.ok(!proc.logs.some(logged("starting")), "start-up has not heard from the API server");
      await sigterm(t, "API server black-holed from the start", proc);
    } finally {
      proxy.heal();
    }
  });

  // Issue 22 item 10: against f48d249 the webhook's listen failure was only logged; the process ran on.
  test("a webhook port in use ends the process with exit code 1 and one line saying why", async (t) => {
    const occupier: Server = createServer();
    await new Promise<void>((resolve) => occupier.listen(0, "127.0.0.1", resolve));
    const port = (occupier.address() as { port: number }).port;
    try {
      const proc = await start("listen-webhook", {
        flags: [`--webhook.bind=127.0.0.1:${port}`, `--webhook.tls.cert=${certFile}`, `--webhook.tls.key=${keyFile}`],
      });
      const exit = await proc.exited;
      const reason = `webhook server (--webhook.bind) cannot listen on 127.0.0.1:${port}: address already in use`;
      const fatal = proc.logs.filter((line) => line.level === "fatal");
      t.diagnostic(`webhook port in use: exit code ${exit.code}; ${JSON.stringify(fatal.map((line) => line.msg))}`);
      assert.equal(exit.code, 1);
      assert.deepEqual(
        fatal.map((line) => line.msg),
        [`${reason}: exiting`],
      );
    } finally {
      await new Promise((resolve) => occupier.close(resolve));
    }
  });

  test("an ops port in use ends the process with exit code 1 and one line saying why", async (t) => {
    const occupier: Server = createServer();
    await new Promise<void>((resolve) => occupier.listen(0, "127.0.0.1", resolve));
    const port = (occupier.address() as { port: number }).port;
    try {
      // The last --server.bind wins over the one OperatorProcess gives.
      const proc = await start("listen-ops", { flags: [`--server.bind=127.0.0.1:${port}`] });
      const exit = await proc.exited;
      const fatal = proc.logs.filter((line) => line.level === "fatal");
      t.diagnostic(`ops port in use: exit code ${exit.code}; ${JSON.stringify(fatal.map((line) => line.err))}`);
      assert.equal(exit.code, 1);
      assert.deepEqual(
        fatal.map((line) => [line.msg, line.err]),
        [["start-up failed", `ops server (--server.bind) cannot listen on 127.0.0.1:${port}: address already in use`]],
      );
    } finally {
      await new Promise((resolve) => occupier.close(resolve));
    }
  });
});
