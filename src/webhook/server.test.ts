import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:tls";
import { startTestWebhook, type TestWebhook } from "../../test/support/webhook-server.js";
import { loadReview } from "./fixtures.js";
import { MUTATE_BINDING_PATH, MUTATE_SERVICE_ACCOUNT_PATH, VALIDATE_IDENTITY_PATH, VALIDATE_SERVICE_ACCOUNT_PATH } from "./server.js";

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
      for (const path of [VALIDATE_IDENTITY_PATH, MUTATE_BINDING_PATH, VALIDATE_SERVICE_ACCOUNT_PATH, MUTATE_SERVICE_ACCOUNT_PATH]) {
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
    assert.match(answer.json().message ?? "", /\/mutate\/serviceaccount, \/validate\/serviceaccount/);
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

describe("webhook server: the ServiceAccount routes", () => {
  const CLIENT_ID = "azure.workload.identity/client-id";
  let broken = false;
  let webhook: TestWebhook;
  const identity = {
    metadata: { name: "app-1", namespace: "team-a", labels: loadReview("serviceaccount-create-labelled").request.object!.metadata!.labels },
    spec: { clientID: "c-1" },
  };

  before(async () => {
    // A cache that throws on demand stands in for a bug in a decision.
    webhook = await startTestWebhook({
      identitiesIn: (namespace) => {
        if (broken) throw new Error("cache exploded");
        return namespace === "team-a" ? [identity] : [];
      },
      // team-b's MSI is the one the developer's fixture names.
      serviceAccounts: {
        allIdentities: () => [identity, { metadata: { name: "b", namespace: "team-b" }, spec: { clientID: "bbbbbbbb-0000-0000-0000-00000000000b" } }],
      },
    });
  });
  after(async () => webhook?.close());

  const answer = async (path: string, fixture: string) => {
    const review = loadReview(fixture);
    const reply = await webhook.post(path, JSON.stringify(review));
    assert.equal(reply.status, 200, reply.body);
    const { response } = JSON.parse(reply.body) as {
      response: { uid: string; allowed: boolean; patch?: string; warnings?: string[]; status?: { code: number; message: string } };
    };
    assert.equal(response.uid, review.request.uid);
    return response;
  };

  test("mutate fills the client ID; validate refuses another team's, with 403", async () => {
    const mutated = await answer(MUTATE_SERVICE_ACCOUNT_PATH, "serviceaccount-create-labelled");
    assert.deepEqual(JSON.parse(Buffer.from(mutated.patch ?? "", "base64").toString()), [
      { op: "add", path: "/metadata/annotations", value: { [CLIENT_ID]: "c-1" } },
    ]);
    const validated = await answer(VALIDATE_SERVICE_ACCOUNT_PATH, "serviceaccount-create-annotated-by-developer");
    assert.equal(validated.allowed, false);
    assert.equal(validated.status?.code, 403);
  });

  test("a client ID the operator does not know: allowed with a warning, counted by result only", async () => {
    const review = loadReview("serviceaccount-create-annotated-by-developer");
    review.request.object!.metadata!.annotations!["azure.workload.identity/client-id"] = "cccccccc-0000-0000-0000-00000000000c";
    const reply = await webhook.post(VALIDATE_SERVICE_ACCOUNT_PATH, JSON.stringify(review));
    const { response } = JSON.parse(reply.body) as { response: { allowed: boolean; warnings?: string[] } };
    assert.equal(response.allowed, true);
    assert.match(response.warnings?.[0] ?? "", /is no managed identity this operator lists/);
    assert.match(await webhook.metrics.registry.metrics(), /azuremsi_admission_unknown_client_ids_total\{result="allowed"\} 1\n/);
  });

  test("a decision that throws: validating denies with 500 and the reason, mutating allows untouched with a warning", async () => {
    broken = true;
    try {
      const validated = await answer(VALIDATE_SERVICE_ACCOUNT_PATH, "serviceaccount-create-annotated-by-developer");
      assert.equal(validated.allowed, false);
      assert.equal(validated.status?.code, 500);
      assert.match(validated.status?.message ?? "", /could not decide \(cache exploded\); denied to stay safe/);
      const mutated = await answer(MUTATE_SERVICE_ACCOUNT_PATH, "serviceaccount-create-labelled");
      assert.equal(mutated.allowed, true);
      assert.equal(mutated.patch, undefined);
      assert.match(mutated.warnings?.[0] ?? "", /could not fill azure\.workload\.identity\/client-id \(cache exploded\)/);
    } finally {
      broken = false;
    }
  });

  test("the metrics count each under its own webhook label, errors included", async () => {
    const text = await webhook.metrics.registry.metrics();
    assert.match(text, /azuremsi_admission_requests_total\{webhook="mutate-serviceaccount",operation="CREATE",result="patched"\} [1-9]/);
    assert.match(text, /azuremsi_admission_requests_total\{webhook="validate-serviceaccount",operation="CREATE",result="denied"\} [1-9]/);
    assert.match(text, /azuremsi_admission_requests_total\{webhook="validate-serviceaccount",operation="CREATE",result="error"\} [1-9]/);
  });

  test("with the mode off (the default), both answer allowed and leave the object alone", async () => {
    const off = await startTestWebhook({ identitiesIn: () => [identity] });
    try {
      for (const [path, fixture] of [
        [MUTATE_SERVICE_ACCOUNT_PATH, "serviceaccount-create-labelled"],
        [VALIDATE_SERVICE_ACCOUNT_PATH, "serviceaccount-create-annotated-by-developer"],
      ] as const) {
        const reply = await off.post(path, JSON.stringify(loadReview(fixture)));
        const { response } = JSON.parse(reply.body) as { response: { allowed: boolean; patch?: string } };
        assert.deepEqual([response.allowed, response.patch], [true, undefined], path);
      }
    } finally {
      await off.close();
    }
  });
});
