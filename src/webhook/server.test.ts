import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:tls";
import { startTestWebhook, type TestWebhook } from "../../test/support/webhook-server.js";
import { loadReview } from "./fixtures.js";
import { MUTATE_BINDING_PATH, VALIDATE_IDENTITY_PATH } from "./server.js";

interface Answer {
  status: number;
  body: string;
  json: () => { message?: string; response?: { uid: string; allowed: boolean; status?: { code: number; message: string } } };
}

describe("webhook server: bad input gets a clear 4xx, never a 5xx", () => {
  let webhook: TestWebhook;

  before(async () => {
    webhook = await startTestWebhook();
  });
  after(async () => webhook?.close());

  const post = async (path: string, body: string | Buffer, contentType = "application/json", method = "POST"): Promise<Answer> => {
    const answer = await webhook.post(path, body, { contentType, method });
    return { ...answer, json: () => JSON.parse(answer.body) as ReturnType<Answer["json"]> };
  };

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
    [
      "uid of the wrong type",
      () => JSON.stringify({ ...loadReview("binding-create-labelled"), request: { ...loadReview("binding-create-labelled").request, uid: 42 } }),
      400,
      /request\.uid must be string/,
    ],
    [
      "missing uid",
      () => {
        const r = loadReview("binding-create-labelled");
        delete (r.request as { uid?: string }).uid;
        return JSON.stringify(r);
      },
      400,
      /must have required property 'uid'/,
    ],
    [
      "wrong apiVersion",
      () => JSON.stringify({ ...loadReview("binding-create-labelled"), apiVersion: "admission.k8s.io/v2" }),
      400,
      /apiVersion must be equal to one of the allowed values/,
    ],
    ["wrong kind", () => JSON.stringify({ ...loadReview("binding-create-labelled"), kind: "Pod" }), 400, /kind must be equal to constant/],
    [
      "labels that are not strings",
      () => {
        const r = loadReview("binding-create-labelled");
        (r.request.object!.metadata as { labels: unknown }).labels = { a: 1 };
        return JSON.stringify(r);
      },
      400,
      /labels/,
    ],
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

  test("TLS below 1.2 is refused by the server (with a client that offers it)", async () => {
    // SECLEVEL=0: otherwise Node 20's OpenSSL would not offer TLS 1.0/1.1 and the client would be the one refusing.
    const handshake = (maxVersion: "TLSv1.1" | "TLSv1.2") =>
      new Promise((resolve, reject) => {
        const socket = connect(
          { host: "127.0.0.1", port: webhook.server.port, ca: webhook.ca, minVersion: "TLSv1", maxVersion, ciphers: "DEFAULT@SECLEVEL=0" },
          () => resolve(socket.end()),
        );
        socket.on("error", reject);
      });
    await handshake("TLSv1.2");
    await assert.rejects(handshake("TLSv1.1"), { code: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION" });
  });

  test("the metrics count what was decided", async () => {
    const text = await webhook.metrics.registry.metrics();
    assert.match(text, /azuremsi_admission_requests_total\{webhook="validate-azureidentity",operation="CREATE",result="denied"\} [1-9]/);
  });
});
