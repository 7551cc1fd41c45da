import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { connect } from "node:tls";
import pino from "pino";
import { issueCert } from "../../certs/pki.js";
import { ensureTestCa } from "../../test/support/test-ca.js";
import { lookupLabelKeys } from "../kube/lookup.js";
import { Metrics } from "../metrics/metrics.js";
import { loadReview } from "./fixtures.js";
import { MUTATE_BINDING_PATH, startWebhookServer, VALIDATE_IDENTITY_PATH, type WebhookServer } from "./server.js";

interface Answer {
  status: number;
  body: string;
  json: () => { message?: string; response?: { uid: string; allowed: boolean; status?: { code: number; message: string } } };
}

describe("webhook server: bad input gets a clear 4xx, never a 5xx", () => {
  let server: WebhookServer;
  let ca: string;
  const metrics = new Metrics({ defaultMetrics: false });

  before(async () => {
    const testCa = await ensureTestCa();
    ca = testCa.cert;
    const tls = await issueCert(testCa, { commonName: "webhook", usage: "server", ipAddresses: ["127.0.0.1"], validityMs: 3_600_000 });
    server = await startWebhookServer({
      host: "127.0.0.1",
      port: 0,
      tls,
      identityPolicy: () => ({ operatorUser: "system:serviceaccount:op:op", allowedUsers: new Set(), allowedGroups: new Set(["system:masters"]) }),
      bindingPolicy: { lookupKeys: lookupLabelKeys("msi.azure.k8s.io/%s"), strict: false, identitiesIn: () => [] },
      metrics,
      log: pino({ level: "silent" }),
    });
  });
  after(async () => server?.close());

  const post = (path: string, body: string | Buffer, contentType = "application/json", method = "POST"): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: server.port, path, method, ca, headers: { "content-type": contentType } }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) }));
      });
      req.on("error", reject);
      req.end(body);
    });

  test("a valid review is answered with its uid", async () => {
    const review = loadReview("identity-create-by-developer");
    const answer = await post(VALIDATE_IDENTITY_PATH, JSON.stringify(review));
    assert.equal(answer.status, 200);
    assert.equal(answer.json().response?.uid, review.request.uid);
    assert.equal(answer.json().response?.allowed, false);
    assert.equal(answer.json().response?.status?.code, 403);
  });

  const cases: [string, () => string | Buffer, number, RegExp, string?][] = [
    ["truncated JSON", () => JSON.stringify(loadReview("binding-create-labelled")).slice(0, 100), 400, /not valid JSON/],
    ["empty body", () => "", 400, /empty body|not valid JSON/],
    ["uid of the wrong type", () => JSON.stringify({ ...loadReview("binding-create-labelled"), request: { ...loadReview("binding-create-labelled").request, uid: 42 } }), 400, /request\.uid must be string/],
    ["missing uid", () => { const r = loadReview("binding-create-labelled"); delete (r.request as { uid?: string }).uid; return JSON.stringify(r); }, 400, /must have required property 'uid'/],
    ["wrong apiVersion", () => JSON.stringify({ ...loadReview("binding-create-labelled"), apiVersion: "admission.k8s.io/v2" }), 400, /apiVersion must be equal to one of the allowed values/],
    ["wrong kind", () => JSON.stringify({ ...loadReview("binding-create-labelled"), kind: "Pod" }), 400, /kind must be equal to constant/],
    ["labels that are not strings", () => { const r = loadReview("binding-create-labelled"); (r.request.object!.metadata as { labels: unknown }).labels = { a: 1 }; return JSON.stringify(r); }, 400, /labels/],
    ["a JSON array", () => "[]", 400, /must be object/],
    ["a non-JSON content type", () => "apiVersion: v1", 415, /Content-Type must be application\/json/, "text/yaml"],
    ["an oversize body", () => Buffer.alloc(4 * 1024 * 1024, "a"), 413, /larger than/],
  ];
  for (const [name, body, status, message, contentType] of cases) {
    test(name, async () => {
      for (const path of [VALIDATE_IDENTITY_PATH, MUTATE_BINDING_PATH]) {
        const answer = await post(path, body(), contentType);
        assert.equal(answer.status, status, `${path}: ${answer.body}`);
        assert.match(answer.json().message ?? "", message);
      }
    });
  }

  test("an unknown path is a 404 that names the right ones", async () => {
    const answer = await post("/mutate", "{}");
    assert.equal(answer.status, 404);
    assert.match(answer.json().message ?? "", /\/validate\/azureidentity/);
  });

  test("TLS below 1.2 is refused", async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port: server.port, ca, minVersion: "TLSv1", maxVersion: "TLSv1.1" }, () => resolve(socket.end()));
        socket.on("error", reject);
      }),
      /version|protocol|handshake/i,
    );
  });

  test("the metrics count what was decided", async () => {
    const text = await metrics.registry.metrics();
    assert.match(text, /azuremsi_admission_requests_total\{webhook="validate-azureidentity",operation="CREATE",result="denied"\} [1-9]/);
  });
});
