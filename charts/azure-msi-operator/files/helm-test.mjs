// `helm test`: run by node in the operator's own image (templates/tests/helm-test.yaml), so the test
// needs no other image. It checks what the API server and Prometheus depend on:
// - the webhook Service answers an AdmissionReview over TLS verified with the webhook's CA (the one
//   the webhook configurations' caBundle holds), echoing its uid with a decision;
// - the metrics Service serves /metrics with azuremsi_build_info.
// Env: WEBHOOK_URL, METRICS_URL, and the CA as WEBHOOK_CA_FILE (a PEM file) or WEBHOOK_CA_BASE64.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:https";

const TIMEOUT_MS = 10_000;
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

function webhookCa() {
  if (process.env.WEBHOOK_CA_FILE) return readFileSync(process.env.WEBHOOK_CA_FILE, "utf8");
  return Buffer.from(env("WEBHOOK_CA_BASE64"), "base64").toString("utf8");
}

/** POSTs `body` as JSON over HTTPS, trusting only `ca`; resolves with the status and the body. */
function postJson(url, body, ca) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      url,
      { method: "POST", ca, timeout: TIMEOUT_MS, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) } },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(payload);
  });
}

async function checkWebhook(url) {
  const uid = randomUUID();
  // Who writes an AzurePodIdentityException is all the guard needs: nothing is stored (the webhook only decides).
  const review = {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "aadpodidentity.k8s.io", version: "v1", kind: "AzurePodIdentityException" },
      resource: { group: "aadpodidentity.k8s.io", version: "v1", resource: "azurepodidentityexceptions" },
      namespace: "helm-test",
      name: "helm-test",
      operation: "CREATE",
      userInfo: { username: "helm-test", groups: ["system:authenticated"] },
      object: {
        apiVersion: "aadpodidentity.k8s.io/v1",
        kind: "AzurePodIdentityException",
        metadata: { name: "helm-test", namespace: "helm-test" },
        spec: { podLabels: { app: "helm-test" } },
      },
      dryRun: true,
    },
  };
  const { status, text } = await postJson(url, review, webhookCa());
  if (status !== 200) throw new Error(`HTTP ${status}: ${text.slice(0, 300)}`);
  const response = JSON.parse(text).response;
  if (response?.uid !== uid || typeof response.allowed !== "boolean") throw new Error(`not an AdmissionReview response for uid ${uid}: ${text.slice(0, 300)}`);
  return `answered over verified TLS (allowed: ${response.allowed}${response.status?.message ? `, "${response.status.message}"` : ""})`;
}

async function checkMetrics(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  const build = /^azuremsi_build_info\{[^}]*\} 1$/m.exec(text);
  if (!build) throw new Error("no azuremsi_build_info series");
  return build[0];
}

let failed = false;
for (const [what, variable, check] of [
  ["webhook", "WEBHOOK_URL", checkWebhook],
  ["metrics", "METRICS_URL", checkMetrics],
]) {
  const url = process.env[variable] ?? `(${variable} not set)`;
  try {
    console.log(`ok ${what} ${url}: ${await check(env(variable))}`);
  } catch (error) {
    failed = true;
    console.error(`FAIL ${what} ${url}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
process.exitCode = failed ? 1 : 0;
