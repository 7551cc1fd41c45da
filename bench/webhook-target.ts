// The server side of bench/webhook-throughput.ts, run as its own process (compiled, from dist/) so
// that the load generator and the server never share an event loop. Two kinds:
//   ours: the real webhook server (src/webhook/server.ts) with the real informer store and lookup,
//         filled with operator-owned AzureIdentities as a synced cache holds them;
//   bare: node:https with the same key, certificate and TLS settings, answering every POST with a
//         canned AdmissionReview response (what Node itself can do here).
// --leader (ours only): also what the Lease holder loads on gaining it (the syncer duty, the Azure
// SDK's clients, selfsigned with one CA generated), so its memory is a leader's.
// Prints {"port":N} on stdout once listening; exits on SIGTERM (so --cpu-prof gets written).
//   node dist/bench/webhook-target.js --kind=ours [--leader] --cert=cert.pem --key=key.pem --identities=10000 --namespaces=2000
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AzureIdentity } from "../src/kube/resources.js";
import { flag } from "./common.js";

const kind = process.argv.find((arg) => arg.startsWith("--kind="))?.split("=")[1];
const pathArg = (name: string) => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3) ?? "";
const tls = { cert: readFileSync(pathArg("cert"), "utf8"), key: readFileSync(pathArg("key"), "utf8") };

async function startOurs(): Promise<{ port: number; close: () => Promise<void> }> {
  // Loaded only here, so the bare server's process holds none of it.
  const [
    { KubeConfig },
    { Informer },
    { lookupLabelKeys },
    resources,
    { createLogger },
    { Metrics },
    { startWebhookServer },
    { cachedIdentity, LABEL_FORMAT, OPERATOR_USER },
  ] = await Promise.all([
    import("@kubernetes/client-node"),
    import("../src/kube/informer.js"),
    import("../src/kube/lookup.js"),
    import("../src/kube/resources.js"),
    import("../src/log.js"),
    import("../src/metrics/metrics.js"),
    import("../src/webhook/server.js"),
    import("./webhook-fixture.js"),
  ]);
  const identities = flag("identities", 10_000);
  const namespaces = flag("namespaces", 2_000);
  // The informer's own store, filled as a first list would fill it; never started (no API server).
  const cache = new Informer<AzureIdentity>(new KubeConfig(), {
    path: `/apis/${resources.AAD_GROUP}/${resources.AAD_VERSION}/${resources.AZURE_IDENTITIES}`,
    labelSelector: resources.OWNED_SELECTOR,
    list: () => Promise.reject(new Error("the bench cache is filled directly")),
  });
  for (let index = 0; index < identities; index++) cache.observe(cachedIdentity(index, namespaces));
  const log = createLogger({ debug: false, json: true });
  // As app.ts wires it: the deployment's metrics (default metrics included) and the cache lookup.
  return startWebhookServer({
    host: "127.0.0.1",
    port: 0,
    tls,
    guardPolicy: {
      operatorUser: OPERATOR_USER,
      adminUsers: new Set(),
      adminGroups: new Set(["system:masters"]),
      micUsers: new Set(),
      namespaceTags: ["k8snamespace"],
    },
    bindingPolicy: {
      lookupKeys: lookupLabelKeys(LABEL_FORMAT),
      strict: false,
      identitiesIn: (namespace) => cache.list(namespace),
      namespaceTags: ["k8snamespace"],
    },
    metrics: new Metrics(),
    log,
  });
}

const CANNED = JSON.stringify({
  apiVersion: "admission.k8s.io/v1",
  kind: "AdmissionReview",
  response: { uid: "705ab4f5-6393-11e8-b7cc-42010a800002", allowed: true },
});

async function startBare(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer({ ...tls, minVersion: "TLSv1.2" }, (request, response) => {
    request.resume();
    request.on("end", () =>
      response.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(CANNED) }).end(CANNED),
    );
  });
  server.keepAliveTimeout = 75_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return { port: typeof address === "object" && address ? address.port : 0, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The modules the leader imports on gaining the Lease, used as it uses them. */
async function loadLeaderModules(): Promise<void> {
  const [{ SyncerDuty }, { createAzureClients }, { resolveEnvironment }, { generateCa }] = await Promise.all([
    import("../src/duties/syncer.js"),
    import("../src/azure/clients.js"),
    import("../src/azure/environment.js"),
    import("../certs/pki.js"),
  ]);
  void SyncerDuty;
  createAzureClients({ environment: await resolveEnvironment("AzurePublicCloud", {}) }).msi("00000000-0000-0000-0000-000000000000");
  await generateCa("webhook-bench leader", 3_600_000);
}

if (kind !== "ours" && kind !== "bare") throw new Error("--kind=ours|bare");
const server = kind === "ours" ? await startOurs() : await startBare();
if (kind === "ours" && process.argv.includes("--leader")) await loadLeaderModules();
process.stdout.write(`${JSON.stringify({ port: server.port, rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) })}\n`);
process.on("SIGTERM", () => {
  void server.close().finally(() => process.exit(0));
  // Keep-alive connections of the load tool may hold close() open; the profile must still be written.
  setTimeout(() => process.exit(0), 2_000).unref();
});
